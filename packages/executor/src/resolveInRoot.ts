// Resolves a container path to a host path inside `root`, following symlinks as the container
// would see them (absolute links restart at root, `..` never climbs above it).
// Hand-written: this is the small part of Go's securejoin that we need; no npm package does it.
import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const maxSymlinks = 255;

export function resolveInRoot(root: string, containerPath: string): string {
  let pending = containerPath.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const hostPath = join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = lstatSync(hostPath).isSymbolicLink();
    } catch {
      // Missing components are fine: the caller may be about to create them.
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > maxSymlinks) throw new Error(`too many symlinks resolving ${containerPath} in ${root}: fix the link loop in the image`);
    const target = readlinkSync(hostPath);
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return join(root, ...resolved);
}
