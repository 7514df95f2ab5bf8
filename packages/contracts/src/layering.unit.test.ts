// The package layering the architecture relies on: the worker never loads the frontend, the
// CLI installs without test packages, the solver knows nothing of Dockerfiles. Checked on the
// declared runtime dependencies (what an install pulls in), recursively, and on the sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '../../..');

interface Manifest { name: string; dir: string; dependencies: Record<string, string> }

function workspaces(): Map<string, Manifest> {
  const out = new Map<string, Manifest>();
  for (const group of ['packages', 'apps', '.']) {
    const dirs = group === '.' ? ['proto'] : readdirSync(join(repo, group)).map((d) => join(group, d));
    for (const dir of dirs) {
      const file = join(repo, dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; dependencies?: Record<string, string> };
      out.set(pkg.name, { name: pkg.name, dir: join(repo, dir), dependencies: pkg.dependencies ?? {} });
    }
  }
  return out;
}

/** Every package an install of `name` pulls in: runtime dependencies, recursively through workspaces. */
function closure(name: string, all = workspaces()): Set<string> {
  const seen = new Set<string>();
  const visit = (n: string) => {
    for (const dep of Object.keys(all.get(n)?.dependencies ?? {})) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      visit(dep);
    }
  };
  visit(name);
  return seen;
}

/** Package names imported by a package's non-test sources. */
function importsOf(name: string, all = workspaces()): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) { if (entry.name !== 'fixtures') walk(path); continue; }
      if (!/\.tsx?$/.test(entry.name) || /\.test(-util)?\.ts$/.test(entry.name)) continue;
      for (const m of readFileSync(path, 'utf8').matchAll(/(?:from|import\()\s*['"]((?:@[^/'"]+\/)?[^/'"]+)/g)) out.add(m[1]);
    }
  };
  walk(join(all.get(name)!.dir, 'src'));
  return out;
}

test('closure() follows runtime dependencies through workspaces', () => {
  const c = closure('@buildyard/fleet');
  assert.ok(c.has('@buildyard/contracts') && c.has('@buildyard/graph') && c.has('ioredis'), [...c].join(' '));
});

test('the worker (fleet) never loads the frontend (control)', () => {
  assert.ok(!closure('@buildyard/fleet').has('@buildyard/control'), 'fleet depends on control, directly or through another package');
  assert.ok(!closure('@buildyard/worker').has('@buildyard/control'), 'the worker app depends on control');
  assert.ok(!importsOf('@buildyard/fleet').has('@buildyard/control'), 'fleet sources import @buildyard/control');
});

test('contracts sit below frontend and worker', () => {
  const c = closure('@buildyard/contracts');
  for (const above of ['@buildyard/control', '@buildyard/fleet', '@buildyard/scheduler', '@buildyard/solver']) assert.ok(!c.has(above), `contracts depends on ${above}`);
});

test('the CLI installs without test packages and without the scheduler', () => {
  for (const pkg of ['@buildyard/client', '@buildyard/cli']) {
    const c = closure(pkg);
    for (const banned of ['@buildyard/testkit', 'testcontainers', '@testcontainers/redis', '@buildyard/scheduler']) assert.ok(!c.has(banned), `${pkg} pulls in ${banned}`);
  }
  const imports = importsOf('@buildyard/client');
  for (const banned of ['@buildyard/testkit', '@buildyard/scheduler']) assert.ok(!imports.has(banned), `client sources import ${banned}`);
});

/** Non-test TypeScript sources of every production package and app. */
function productionSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) { if (!['fixtures', 'node_modules', 'dist', 'ui'].includes(entry.name)) walk(path); }
      else if (/\.ts$/.test(entry.name) && !/\.test(-util)?\.ts$/.test(entry.name)) out.push(path);
    }
  };
  for (const m of workspaces().values()) if (m.name !== '@buildyard/testkit' && existsSync(join(m.dir, 'src'))) walk(join(m.dir, 'src'));
  return out;
}

test('no production source finds the repository root by a relative path', () => {
  for (const file of productionSources()) {
    assert.doesNotMatch(readFileSync(file, 'utf8'), /repoRoot|fileURLToPath\(import\.meta\.url\), '(\.\.\/)+\.\.'/, file);
  }
});

test('the solver knows nothing of Dockerfiles (planning lives above it, in localbuild and control)', () => {
  const all = workspaces();
  assert.ok(!closure('@buildyard/solver', all).has('@buildyard/dockerfile'), 'solver depends on dockerfile, directly or through another package');
  assert.ok(!importsOf('@buildyard/solver', all).has('@buildyard/dockerfile'), 'solver sources import @buildyard/dockerfile');
});
