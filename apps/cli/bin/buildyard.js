#!/usr/bin/env node
// Runs the bundle of src/main.ts (scripts/bundle.mjs, part of `npm run build`). Node 22.1+ keeps
// the compiled code of the bundle in its on-disk compile cache, which saves most of the parse
// and compile time of the next start; older Nodes have no such cache and skip this. The bundle is
// imported after the cache is on, so its own compilation is cached too.
// (node:module itself is only loaded where the cache exists: on Node 20 it costs a millisecond.)
if (Number(process.versions.node.split('.')[0]) >= 22) (await import('node:module')).enableCompileCache?.();
await import('../dist/buildyard.mjs');
