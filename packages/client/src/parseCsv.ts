// buildx reads its `type=...,k=v` flags with Go's encoding/csv, so a field may be double-quoted
// to hold commas (`"name=a,b"` or `name="a,b"`); this mirrors that for one line.
import { usageError } from './ClientError.js';

/** Splits one CSV line into fields, honouring double quotes ("" is a literal quote). */
export function parseCsv(line: string, flag = 'value'): string[] {
  const fields: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') { cur += '"'; i++; } else quoted = false;
      } else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { fields.push(cur); cur = ''; }
    else cur += c;
  }
  if (quoted) throw usageError(`${flag} "${line}": unterminated quote; close the double quote`);
  fields.push(cur);
  return fields;
}

/** `k=v` fields into a record; a field without `=` is an error naming the flag. */
export function parseCsvAttrs(line: string, flag: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const field of parseCsv(line, flag)) {
    const f = field.trim();
    if (f === '') continue;
    const eq = f.indexOf('=');
    if (eq <= 0) throw usageError(`${flag} "${line}": field "${f}" is not key=value; write e.g. type=local,dest=out`);
    attrs[f.slice(0, eq).trim().toLowerCase()] = f.slice(eq + 1);
  }
  return attrs;
}
