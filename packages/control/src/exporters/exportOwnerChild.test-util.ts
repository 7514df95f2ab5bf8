// Child process for the exportOwners tests: takes its directory under the export dir given,
// writes a file there as an export would, says where, and runs until its stdin closes.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownExportDir } from './exportOwners.js';

const dir = await ownExportDir(process.argv[2]!);
await writeFile(join(dir, 'unpacked'), 'an export in progress');
process.stdout.write(`ready ${dir}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
