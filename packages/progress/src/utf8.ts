/** Length of the longest prefix of `buf` (at most `max` bytes) that does not cut a UTF-8 character. */
export function utf8SafeCut(buf: Buffer, max: number): number {
  if (max >= buf.length) return buf.length;
  let cut = max;
  // Back off over continuation bytes (10xxxxxx) to the start of the character being cut.
  while (cut > 0 && max - cut < 4 && (buf[cut] & 0xc0) === 0x80) cut--;
  return max - cut < 4 ? cut : max;
}

/** Number of trailing bytes that form an incomplete UTF-8 sequence (0 when the end is clean). */
export function incompleteUtf8Tail(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back];
    if ((b & 0xc0) === 0x80) continue; // continuation: keep looking for the lead byte
    const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}
