// A decompression bomb's content: a tar of one file of zeros, which gzip makes a thousand times
// smaller and zstd far more, made as it is read so GiBs take no memory.

const CHUNK = 1024 ** 2;

/** A ustar header of a regular file `name` declaring `size` bytes (up to 8 GiB). */
function fileHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100); h.write('0000000\0', 108); h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136); h.write('        ', 148); h.write('0', 156); h.write('ustar\0', 257); h.write('00', 263);
  h.write(`${h.reduce((sum, b) => sum + b, 0).toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** The tar of one file `name` of `size` zeros: its header first (a chunk of its own), then the content and the end blocks. */
export async function* zerosTar(size: number, name = 'zeros'): AsyncGenerator<Buffer> {
  yield fileHeader(name, size);
  for (let left = size; left > 0; left -= CHUNK) yield Buffer.alloc(Math.min(CHUNK, left));
  yield Buffer.alloc(size % 512 === 0 ? 1024 : 1024 + 512 - (size % 512));
}
