#!/usr/bin/env node
// Writes docs/configuration.md from the option table of @buildyard/config (configReference()).
//
//   node --conditions=source --import tsx scripts/gen-config-docs.mjs           write the file
//   node --conditions=source --import tsx scripts/gen-config-docs.mjs --check   exit 1 when it is stale
//   ... --out PATH                                                              write elsewhere
//
// It imports the config package from its TypeScript sources (the "source" condition through
// tsx), so it needs no build.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configReference } from '@buildyard/config';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const target = outIndex >= 0 ? resolve(args[outIndex + 1] ?? '') : resolve(repoRoot, 'docs/configuration.md');
const text = configReference();

if (args.includes('--check')) {
  let current = '';
  try { current = readFileSync(target, 'utf8'); } catch { /* missing counts as stale */ }
  if (current !== text) {
    console.error(`${target} is stale: run \`npm run docs:config\` and commit the result`);
    process.exit(1);
  }
  console.log(`${target} is up to date`);
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
