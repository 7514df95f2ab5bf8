// What the registry client, image source and pull-accounting tests share (packages/oci,
// packages/solver, packages/fleet): a real registry seeded with the multi-arch busybox and a
// scratch dir, started before a file's tests and stopped after them.
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedBusybox, type SeededImage } from '@buildyard/hostkit';
import { startRegistry, type RegistryService } from './services.js';

export interface SeededRegistryFixture {
  readonly registry: RegistryService;
  /** busybox in the registry, both architectures. */
  readonly busybox: SeededImage;
  /** A scratch dir, removed after the file's tests. */
  readonly dir: string;
}

/**
 * Registers the file's before/after hooks and returns the fixture (read it inside tests).
 * `prepare` runs inside the same before hook once all is started: node:test does not order a
 * file's top-level hooks against each other, so a second `before` could run too early.
 */
export function seededRegistryFixture(label: string, prepare?: (f: SeededRegistryFixture) => Promise<void>): SeededRegistryFixture {
  let registry: RegistryService | undefined;
  let busybox: SeededImage | undefined;
  let dir = '';
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the seeded registry fixture is not started yet: use it inside a test');
    return value;
  };
  const fixture: SeededRegistryFixture = {
    get registry() { return started(registry); },
    get busybox() { return started(busybox); },
    get dir() { return started(dir || undefined); },
  };
  before(async () => {
    registry = await startRegistry();
    busybox = await seedBusybox(registry);
    dir = await mkdtemp(join(tmpdir(), `buildyard-${label}-`));
    await prepare?.(fixture);
  });
  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return fixture;
}
