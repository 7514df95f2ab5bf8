// Node 20 has no compile cache (module.enableCompileCache is Node 22.1+), so every start of the
// CLI parsed and compiled its CommonJS front again: ~9 of the ~24 ms `--help` spends past Node's
// own start-up on the dev machine. This runs a CommonJS file as Node's loader would, but through
// a vm.Script given V8's code cache of an earlier run, kept in the user's cache directory.
// Hand-written: the npm package v8-compile-cache hooks every require() and, measured here, started
// `--help` slower than no cache at all (72 against 62 ms); this is one file and a few syscalls.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');
const { pathToFileURL } = require('node:url');

/**
 * `buildyard/v8` under the client's cache directory (as the context hash cache's: `$BUILDYARD_CACHE_DIR`,
 * `$XDG_CACHE_HOME` or `~/.cache`); none when Node's own switch turns caches off.
 */
function defaultCacheDir() {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const base = process.env.BUILDYARD_CACHE_DIR || process.env.XDG_CACHE_HOME || (process.env.HOME ? path.join(process.env.HOME, '.cache') : '');
  return base ? path.join(base, 'buildyard', 'v8') : undefined;
}

/**
 * V8 accepts a code cache made for any source of the same length (its check is the length and
 * V8's flags), and a new version of a file is often the same length (a version string): the name
 * carries the file's content hash, written beside it at build time (`<file>.id`), and its mtime
 * and size, which change when a file is edited by hand.
 */
function cacheName(file, stat) {
  let id = 'noid';
  try { id = fs.readFileSync(`${file}.id`, 'utf8').trim(); } catch { /* unbundled: mtime and size */ }
  return `${path.basename(file)}-${id}-${stat.size}-${Math.trunc(stat.mtimeMs)}-${process.version}-${process.arch}.bin`;
}

/**
 * Code from the cache runs as this user: read only a directory this user owns that no one else
 * can write (a shared or planted one could hold bytecode made to match the file).
 */
function trusted(dir) {
  try {
    const s = fs.statSync(dir);
    return s.isDirectory() && s.uid === process.getuid?.() && (s.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Caches not written for this long (other builds, other Node versions) are dropped when a new one is written. */
const KEEP_MS = 30 * 24 * 3600 * 1000;

function save(dir, name, data) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!trusted(dir)) return;
    const tmp = path.join(dir, `.${name}.${process.pid}`);
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, path.join(dir, name)); // whole or absent: another process may read it now
    const now = Date.now();
    for (const other of fs.readdirSync(dir)) {
      if (other === name) continue;
      const p = path.join(dir, other);
      try { if (now - fs.statSync(p).mtimeMs > KEEP_MS) fs.unlinkSync(p); } catch { /* raced */ }
    }
  } catch {
    // A read-only home or a full disk costs the next start its cache, nothing else.
  }
}

/**
 * Compiles `file` (CommonJS) with V8's code cache from `dir` and runs it as Node's loader runs a
 * module; `register` puts it in require's cache first (a later require() then finds it).
 * Returns how the cache was used and `save()`, which writes the cache when there was no full one.
 */
function loadWithCodeCache(file, dir, register) {
  const source = fs.readFileSync(file, 'utf8');
  const name = dir && cacheName(file, fs.statSync(file));
  let cache = dir ? 'absent' : 'off';
  let cachedData;
  if (dir && !trusted(dir)) cache = fs.existsSync(dir) ? 'untrusted' : 'absent';
  else if (dir) try { cachedData = fs.readFileSync(path.join(dir, name)); } catch { /* first run */ }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  if (cachedData) cache = script.cachedDataRejected ? 'rejected' : 'accepted';
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  if (register) Module._cache[file] = mod;
  try {
    script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  } catch (err) {
    if (register) delete Module._cache[file]; // as require() does: the next one tries again
    throw err;
  }
  mod.loaded = true;
  // A cache holds the functions its run compiled: one made by `--version` (a few KB) is written
  // again by a command that runs more of the program. Making the cache costs ~1.3 ms for the
  // front, so a full one (about the source's size) is not written again.
  const small = cache === 'accepted' && cachedData.length < source.length / 2;
  const wanted = dir && (small || cache === 'absent' || cache === 'rejected');
  return { cache, exports: mod.exports, save: () => { if (wanted) save(dir, name, script.createCachedData()); } };
}

/**
 * Runs `file`, the CLI's front, with V8's code cache from `dir`, and gives it two hooks (symbols
 * on globalThis, which scripts/bundle.mjs and src/main.ts use): its import() calls, and loading
 * another CommonJS file of the bundle from the cache (the bundled gRPC). Returns how the front's
 * cache was used ('accepted', 'rejected', 'absent', 'untrusted' or 'off') and `save()`, which
 * writes the caches that need it (bin/buildyard.js calls it on exit, when the functions the
 * command ran are compiled too and go into the cache).
 */
function runWithCodeCache(file, dir = defaultCacheDir()) {
  const base = path.dirname(file);
  const saves = [];
  // Code compiled from a cache cannot call import() on Node 20 (its dynamic import callback is
  // lost), so the bundle imports through this (scripts/bundle.mjs, routeDynamicImports). Bare
  // names resolve from here, which has the bundle's node_modules (both sit in apps/cli).
  globalThis[Symbol.for('buildyard.cli.import')] = (spec) =>
    import(spec.startsWith('.') ? pathToFileURL(path.resolve(base, spec)).href : spec);
  globalThis[Symbol.for('buildyard.cli.require')] = (spec) => {
    // The key require() itself would use: the real path.
    const target = fs.realpathSync(path.resolve(base, spec));
    if (Module._cache[target]) return Module._cache[target].exports;
    const loaded = loadWithCodeCache(target, dir, true);
    saves.push(loaded.save);
    return loaded.exports;
  };
  const front = loadWithCodeCache(file, dir, false);
  return { cache: front.cache, save: () => { for (const s of [front.save, ...saves]) s(); } };
}

module.exports = { runWithCodeCache };
