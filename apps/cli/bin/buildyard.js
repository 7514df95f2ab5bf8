#!/usr/bin/env node
// CommonJS (bin/package.json): runs the bundle of src/main.ts, dist/buildyard.cjs (scripts/bundle.mjs,
// part of `npm run build`), so `--version` and `--help` never start Node's ES module loader. Node
// 22.1+ keeps the compiled code of the bundle in its on-disk compile cache, which saves most of
// the parse and compile time of the next start; older Nodes have no such cache and skip this. The
// bundle is required after the cache is on, so its own compilation is cached too.
if (Number(process.versions.node.split('.')[0]) >= 22) require('node:module').enableCompileCache?.();
require('../dist/buildyard.cjs');
