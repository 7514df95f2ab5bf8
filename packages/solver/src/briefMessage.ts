/**
 * User input quoted in a message, cut to about `max` characters: its start and end stay (the end
 * of an error often says what to do), the middle becomes a count of what was left out.
 */
export function briefMessage(text: string, max = 600): string {
  if (text.length <= max) return text;
  const head = Math.floor(max * 0.6);
  const tail = Math.floor(max * 0.3);
  return `${text.slice(0, head)}… (${text.length - head - tail} chars left out) …${text.slice(text.length - tail)}`;
}
