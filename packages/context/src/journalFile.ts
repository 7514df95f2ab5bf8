// An append-only file of JSON lines, for the client's caches of 20,000-row contexts: a sync that
// changed one file appends one short line instead of rewriting every row (which cost more than
// the rest of a one-file sync), and the owner rewrites it whole now and then to compact it.
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * How many rows a journal's appended lines may hold for a file of `rows` rows before a save
 * rewrites it whole: reading stays within about 1.5x the snapshot's rows.
 */
export const compactAfter = (rows: number): number => Math.max(1000, rows >> 1);

/**
 * The records of `file` in order, up to the first that does not parse (a write cut short by a
 * crash, or another process's line torn through it): what follows is dropped, so a reader only
 * ever sees a prefix of what was written. Missing file: no records.
 */
export async function readJournal(file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const records: unknown[] = [];
  // Every record is an object or array, so a line cut short never parses.
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      records.push(JSON.parse(line));
    } catch {
      break;
    }
  }
  return records;
}

/** Adds one record with a single O_APPEND write, so concurrent writers' lines do not interleave. */
export async function appendJournal(file: string, record: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, `${JSON.stringify(record)}\n`);
}

/** Replaces the whole file with `records` (written aside, then renamed over it). */
export async function rewriteJournal(file: string, records: readonly unknown[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  // Unique per write: concurrent syncs of one directory (bake) each write a whole file; the
  // last rename wins and an append racing with it is lost, which only costs a cache miss.
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  await rename(tmp, file);
}
