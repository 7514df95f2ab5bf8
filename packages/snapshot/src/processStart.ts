import { readFile } from 'node:fs/promises';

/** A process's start time (clock ticks since boot): with the pid, it names one process for good. */
export async function processStart(pid: number): Promise<string | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (start time) follows the parenthesised command, which may itself hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
