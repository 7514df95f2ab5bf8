// Every case group; the group name is the file under expected/.
import type { Case } from '../lib/types.js';
import { cases as addurl } from './addurl.js';
import { cases as archive } from './archive.js';
import { cases as args } from './args.js';
import { cases as copy } from './copy.js';
import { cases as corners } from './corners.js';
import { cases as corners2 } from './corners2.js';
import { cases as dest } from './dest.js';
import { cases as edges } from './edges.js';
import { cases as errors } from './errors.js';
import { cases as hardlinks } from './hardlinks.js';
import { cases as heredoc } from './heredoc.js';
import { cases as instructions } from './instructions.js';
import { cases as link } from './link.js';
import { cases as more } from './more.js';
import { cases as run } from './run.js';
import { cases as times } from './times.js';

export const groups: Record<string, Case[]> = { instructions, copy, heredoc, args, run, errors, more, addurl, archive, edges, times, corners, link, hardlinks, corners2, dest };
