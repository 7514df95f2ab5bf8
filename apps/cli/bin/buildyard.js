#!/usr/bin/env node
// CommonJS (bin/package.json), started by bin/buildyard (which defers NODE_EXTRA_CA_CERTS; see
// extraCaCerts.js) or directly by node: runs the bundle of src/main.ts, dist/buildyard.cjs (scripts/bundle.mjs,
// part of `npm run build`), so `--version` and `--help` never start Node's ES module loader. The
// next start then skips most of the bundle's parse and compile time: Node 22.1+ keeps the compiled
// code in its on-disk compile cache (turned on before the bundle is required, so its compilation
// is cached too); on Node 20 codeCache.js keeps V8's code cache of the bundle itself.
const deferredCaCerts = process.env.BUILDYARD_DEFERRED_CA_CERTS;
if (deferredCaCerts) require('./extraCaCerts.js').deferExtraCaCerts(deferredCaCerts);
const bundle = require('node:path').join(__dirname, '../dist/buildyard.cjs');
if (Number(process.versions.node.split('.')[0]) >= 22) {
  require('node:module').enableCompileCache?.();
  require(bundle);
} else {
  const { save } = require('./codeCache.js').runWithCodeCache(bundle);
  // On exit the functions the command ran are compiled too: the cache then holds them.
  process.once('exit', save);
}
