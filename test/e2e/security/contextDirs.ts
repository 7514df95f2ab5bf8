// Build contexts holding one Dockerfile each, under a temporary directory a test file removes
// in its `after`.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class ContextDirs {
  private readonly root: string;

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), `buildyard-${prefix}-`));
  }

  /** A context named `name` whose Dockerfile is `dockerfile`; returns its directory. */
  make(name: string, dockerfile: string): string {
    const dir = join(this.root, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), dockerfile);
    return dir;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
