#!/usr/bin/env node
// Bundles `buildyard` (src/main.ts and the workspace packages it uses, from their TypeScript
// sources) into dist/buildyard.cjs, which bin/buildyard.js runs, and the ES module chunks its
// actions load (see bundle()). Start-up is the point: one file to read instead of ~170 modules to
// resolve and load, and everything a command does not need split into chunks that load at the
// action's `await import()`, so `--version` and `--help` read only the CommonJS front.
//   node scripts/bundle.mjs [--outdir=DIR] [--metafile=FILE]
// Chunks stay next to the entry, one level under apps/cli: version.ts reads ../package.json
// relative to its own module.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';

const appDir = resolve(import.meta.dirname, '..');
const repoRoot = resolve(appDir, '../..');

/**
 * Native addons cannot be bundled: a package that is only a native addon stays in node_modules,
 * and a `.node` file a package loads in a try block (ssh2's optional crypto binding) is left to
 * that require, which fails from the bundle's directory and leaves the package on its JS code.
 */
const NATIVE = ['cpu-features', '*.node'];

/**
 * Loaded from node_modules at run time, not bundled. The telemetry packages load only when OTEL_*
 * asks for spans and patch modules through require hooks, which bundled code would bypass.
 * @grpc/proto-loader is only required by grpc-js's channelz and ORCA services (servers), never
 * by a client. @grpc/grpc-js itself is both: see grpcSwitch().
 */
export const EXTERNAL = ['@buildyard/telemetry', '@opentelemetry/*', '@grpc/proto-loader', ...NATIVE];

/** Set by src/main.ts when telemetry has started (and patched the node_modules copy of grpc-js). */
export const EXTERNAL_GRPC_FLAG = 'buildyard.cli.externalGrpc';

/**
 * `@grpc/grpc-js` resolves to a switch between two copies of it: the one in node_modules when the
 * command traces, because OpenTelemetry's gRPC instrumentation patches that copy as it loads (so
 * each call carries the command's trace context), and otherwise a bundled one, which loads in
 * about half the time (one file instead of ~65 CommonJS modules to resolve and read; ~13 ms of a
 * build's start-up on the dev machine). A process uses one of them only: every importer,
 * the proto stubs included, goes through the switch. The bundled copy is a CommonJS file of its
 * own, GRPC_FILE (built in bundle()), so the front can load it from V8's code cache before the
 * build's ES module chunks require it (bin/codeCache.js; src/main.ts).
 */
export const GRPC_FILE = 'buildyard-grpc.cjs';

function grpcSwitch() {
  const namespace = 'buildyard-grpc-switch';
  return {
    name: 'grpc-switch',
    setup(b) {
      b.onResolve({ filter: /^@grpc\/grpc-js$/ }, (args) => (args.namespace === namespace ? undefined : { path: '@grpc/grpc-js', namespace }));
      // The switch's own requires stay as they are: node_modules' copy, or the file beside the chunk.
      b.onResolve({ filter: /.*/, namespace }, (args) => ({ path: args.path, external: true }));
      b.onLoad({ filter: /.*/, namespace }, () => ({
        contents: `module.exports = globalThis[Symbol.for(${JSON.stringify(EXTERNAL_GRPC_FLAG)})] ? require('@grpc/grpc-js') : require(${JSON.stringify(`./${GRPC_FILE}`)});`,
        resolveDir: appDir,
        loader: 'js',
      }));
    },
  };
}

const isWorkspaceSource = (path) => [join(repoRoot, 'packages') + sep, join(repoRoot, 'proto') + sep, join(appDir, 'src') + sep]
  .some((root) => path.startsWith(root)) && !path.includes(`${sep}node_modules${sep}`);

/**
 * Rewrites `import { a } from '@buildyard/pkg'` in workspace sources to import `a` from the
 * module of pkg that defines it. esbuild's code splitting places a module in the chunk of every
 * entry that can reach it through import statements, before tree shaking: through a package's
 * index.ts (re-exports of all its modules), the CLI's static import of ClientError would reach
 * gRPC, node-forge and zod and put them all in one chunk that `--version` loads. Names the index
 * does not re-export from a module (or that this reader cannot place) keep the index import.
 */
function workspaceBarrels() {
  const barrels = new Map();
  const fallbacks = new Set();
  const moduleFile = (dir, spec) => {
    const base = resolve(dir, spec.replace(/\.js$/, ''));
    for (const f of [`${base}.ts`, `${base}.tsx`, join(base, 'index.ts')]) if (existsSync(f)) return f;
    return undefined;
  };
  const specifiers = (list) => list.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '').split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const type = /^type\s+/.test(s);
    const [name, alias] = s.replace(/^type\s+/, '').split(/\s+as\s+/);
    return { type, name, alias: alias ?? name };
  });
  const definingModule = async (target, hops = 0) => {
    const text = await readFile(target.file, 'utf8');
    for (const m of text.matchAll(/export\s+\{([^}]*)\}\s*from\s*'(\.[^']+)'/g)) {
      const s = specifiers(m[1]).find((x) => !x.type && x.alias === target.name);
      const file = s && moduleFile(dirname(target.file), m[2]);
      if (file && hops < 4) return definingModule({ file, name: s.name }, hops + 1);
    }
    return target;
  };
  /**
   * name -> { file, name } (name '*' for a namespace) of a package's index.ts. Memoised as a
   * promise, so files loaded in parallel all see the complete map (package indexes re-export
   * only from packages below them, so the recursion through other indexes ends).
   */
  const barrel = (b, pkg) => {
    if (!barrels.has(pkg)) barrels.set(pkg, readBarrel(b, pkg));
    return barrels.get(pkg);
  };
  const readBarrel = async (b, pkg) => {
    const r = await b.resolve(pkg, { kind: 'import-statement', resolveDir: appDir });
    const map = new Map();
    if (r.errors.length === 0 && !r.external && isWorkspaceSource(r.path)) {
      const dir = dirname(r.path);
      const text = await readFile(r.path, 'utf8');
      const stars = [];
      for (const m of text.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from\s*'(\.[^']+)'/g)) {
        const file = moduleFile(dir, m[3]);
        if (m[1] || !file) continue;
        for (const s of specifiers(m[2])) if (!s.type) map.set(s.alias, { file, name: s.name });
      }
      for (const m of text.matchAll(/export\s+\*\s+as\s+(\w+)\s+from\s*'(\.[^']+)'/g)) {
        const file = moduleFile(dir, m[2]);
        if (file) map.set(m[1], { file, name: '*' });
      }
      for (const m of text.matchAll(/export\s+\*\s+from\s*'(\.[^']+)'/g)) {
        const file = moduleFile(dir, m[1]);
        if (file) stars.push({ file, text: await readFile(file, 'utf8') });
      }
      // An index may pass on names of another workspace package (dockerfile re-exports fileop's
      // git references): those resolve through that package's index.
      for (const m of text.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from\s*'(@buildyard\/[\w-]+)'/g)) {
        if (m[1] || m[3] === pkg) continue;
        const other = await barrel(b, m[3]);
        for (const s of specifiers(m[2])) {
          const target = s.type ? undefined : other.get(s.name) ?? (other.star?.(s.name) ? { file: other.star(s.name), name: s.name } : undefined);
          if (target) map.set(s.alias, target);
        }
      }
      // A module the index names may itself re-export the name from another (a light module
      // split off a heavy one): follow such hops, so the import lands where the name is defined.
      for (const [alias, target] of map) if (target.name !== '*') map.set(alias, await definingModule(target));
      map.star = (name) => stars.find((s) => new RegExp(`export\\s+(declare\\s+)?(abstract\\s+)?(async\\s+)?(function\\*?|const|let|var|class|enum|interface|type)\\s+${name}\\b`).test(s.text))?.file;
    }
    return map;
  };
  return {
    name: 'workspace-barrels',
    setup(b) {
      // A name left on an index import pulls that whole package into the chunk: say so.
      b.onEnd(() => { for (const f of fallbacks) console.warn(`bundle: ${f} is imported from the package index (not found in a module it re-exports)`); });
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (!isWorkspaceSource(args.path)) return undefined;
        const text = await readFile(args.path, 'utf8');
        const statements = [...text.matchAll(/^(import|export)\s+(type\s+)?\{([^}]*)\}\s*from\s*'(@buildyard\/[\w-]+)';?/gm)];
        if (statements.length === 0) return { contents: text, loader: 'ts' };
        let out = '';
        let last = 0;
        for (const m of statements) {
          const [whole, keyword, typeOnly, list, pkg] = m;
          out += text.slice(last, m.index);
          last = m.index + whole.length;
          const map = typeOnly ? undefined : await barrel(b, pkg);
          if (!map || map.size === 0) { out += whole; continue; }
          const byFile = new Map();
          const rest = [];
          const parts = [];
          for (const s of specifiers(list)) {
            if (s.type) continue; // elided by TypeScript anyway
            const target = map.get(s.name) ?? (map.star?.(s.name) ? { file: map.star(s.name), name: s.name } : undefined);
            if (!target) {
              rest.push(s.name === s.alias ? s.name : `${s.name} as ${s.alias}`);
              fallbacks.add(`${pkg} ${s.name} (${relative(repoRoot, args.path)})`);
            }
            else if (target.name === '*') parts.push(`${keyword} * as ${s.alias} from ${JSON.stringify(target.file)};`);
            else byFile.set(target.file, [...(byFile.get(target.file) ?? []), target.name === s.alias ? s.alias : `${target.name} as ${s.alias}`]);
          }
          for (const [file, names] of byFile) parts.push(`${keyword} { ${names.join(', ')} } from ${JSON.stringify(file)};`);
          if (rest.length > 0) parts.push(`${keyword} { ${rest.join(', ')} } from '${pkg}';`);
          // Same line count, so the source map still points at the right lines.
          out += parts.join(' ') + '\n'.repeat(whole.split('\n').length - 1);
        }
        return { contents: out + text.slice(last), loader: 'ts' };
      });
    },
  };
}

/**
 * CommonJS dependencies (commander, tar-stream, node-forge, ssh2) call require() for Node's
 * built-ins and read __dirname; an ES module has neither. (__dirname is the bundle's directory:
 * ssh2 only uses it for a Windows helper.) esbuild puts the banner on every chunk; the chunks
 * that use none of it lose it again after the build (see dropUnusedShims).
 */
const COMMONJS_SHIM = [
  "import { createRequire as __buildyardCreateRequire } from 'node:module';",
  "import { dirname as __buildyardDirname } from 'node:path';",
  "import { fileURLToPath as __buildyardFileURLToPath } from 'node:url';",
  'const require = __buildyardCreateRequire(import.meta.url);',
  'const __filename = __buildyardFileURLToPath(import.meta.url);',
  'const __dirname = __buildyardDirname(__filename);',
].join('\n');

/**
 * Blanks the shim in chunks that never name require, __filename or __dirname: the entry and most
 * chunks then do not load node:module and node:url at start-up. Blank lines, not fewer lines, so
 * the source maps stay right.
 */
async function dropUnusedShims(outdir, metafile) {
  for (const output of Object.keys(metafile.outputs).filter((o) => o.endsWith('.mjs'))) {
    const file = resolve(appDir, output);
    const text = await readFile(file, 'utf8');
    if (!text.startsWith(COMMONJS_SHIM)) continue;
    const body = text.slice(COMMONJS_SHIM.length);
    if (/\b(require|__filename|__dirname)\b/.test(body)) continue;
    await writeFile(file, COMMONJS_SHIM.replace(/[^\n]/g, '') + body);
  }
}

/**
 * commander requires `node:child_process` as it loads, for executable subcommands, which this CLI
 * has none of; loading that module cost --help ~3 ms (of ~16 ms past Node's start-up). In the
 * front's copy it is required on first use instead. The build fails if commander's source no longer
 * has that line or uses child_process other than through spawn(), so an upgrade is looked at.
 */
function lazyChildProcess() {
  const eager = "const childProcess = require('node:child_process');";
  // One line, as the original: the source map's lines stay right.
  const lazy = "let childProcessModule; const childProcess = { spawn: (...a) => (childProcessModule ??= require('node:child_process')).spawn(...a) };";
  return {
    name: 'lazy-child-process',
    setup(b) {
      b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        const uses = [...text.matchAll(/childProcess\.(\w+)/g)].map((m) => m[1]);
        if (!text.includes(eager) || uses.some((u) => u !== 'spawn')) {
          throw new Error(`bundle: ${args.path} no longer requires child_process as lazyChildProcess() expects; look at it again`);
        }
        return { contents: text.replace(eager, lazy), loader: 'js' };
      });
    },
  };
}

/**
 * Two changes to the bundled copy of grpc-js, each exact (the build fails when grpc-js no longer
 * has the code it replaces, so an upgrade is looked at):
 * - It asks `net.isIPv6` of every target and address it handles (resolver, pick-first, address
 *   strings). Node's first call compiles its IPv6 pattern, ~3 ms, and the next calls run it
 *   slowly before V8 optimises it: ~4 ms of a build's main thread, for addresses that are almost
 *   always IPv4 or host names. The calls ask for a ':' first, which every IPv6 address has and no
 *   IPv4 address or host name does, so the answer is the same.
 * - Over TLS it sets the server name (SNI) to the target's host even when that is an IP address,
 *   which RFC 6066 does not allow: Node prints a deprecation warning (DEP0123) on every
 *   `buildyard build --builder tls://10.0.0.5:port` (grpc/grpc-node#1919). For an address it now
 *   sets none, as Node's own tls.connect does; the certificate is still checked against the host.
 */
function grpcClientFixes() {
  const helpers = " const __isIPv6 = (s) => typeof s === 'string' && s.includes(':') && require('net').isIPv6(s);";
  const rewrites = [
    { what: 'calls of net.isIPv6', from: '(0, net_1.isIPv6)(', to: '__isIPv6(', times: 0 },
    { what: 'the TLS server name', from: 'connectionOptions.servername = remoteHost;', to: "if (!require('net').isIPv4(remoteHost) && !__isIPv6(remoteHost)) connectionOptions.servername = remoteHost;", times: 0 },
  ];
  return {
    name: 'grpc-client-fixes',
    setup(b) {
      b.onLoad({ filter: /[\\/]@grpc[\\/]grpc-js[\\/]build[\\/]src[\\/][\w-]+\.js$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        const used = rewrites.filter((r) => text.includes(r.from));
        if (used.length === 0) return undefined;
        let body = text;
        for (const r of used) { r.times++; body = body.replaceAll(r.from, r.to); }
        // On the first line, after the module's "use strict" (which must stay its first
        // statement): the source map's lines stay right.
        const strict = '"use strict";';
        return { contents: body.startsWith(strict) ? strict + helpers + body.slice(strict.length) : helpers + body, loader: 'js' };
      });
      b.onEnd((result) => {
        const missing = rewrites.filter((r) => r.times === 0).map((r) => r.what);
        if (result.errors.length === 0 && missing.length > 0) throw new Error(`bundle: grpc-js no longer has the code grpcClientFixes() replaces (${missing.join(', ')}); look at it again`);
      });
    },
  };
}

/**
 * The CommonJS front's `import('./load/x.js')` (src/load/*.ts, one module per feature) loads the
 * ES module entry built from that file.
 */
function esmLoads() {
  return {
    name: 'esm-loads',
    setup(b) {
      b.onResolve({ filter: /^\.\/load\/[\w-]+\.js$/ }, (args) => ({ path: `./buildyard-load-${basename(args.path, '.js')}.mjs`, external: true }));
    },
  };
}

/**
 * On Node 20 bin/codeCache.js runs the front from V8's code cache, and code compiled from a cache
 * loses Node's dynamic import callback (`import()` throws ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
 * So the front's `import("…")` calls become `__dImp("…")`: the loader's own import() when it set one
 * (resolving as from the front's directory), else the front's. The name has import's length, so
 * the source map's columns stay right.
 */
const DYNAMIC_IMPORT_NAME = '__dImp';
export const DYNAMIC_IMPORT_FLAG = 'buildyard.cli.import';
const DYNAMIC_IMPORT_BANNER = `const ${DYNAMIC_IMPORT_NAME} = globalThis[Symbol.for(${JSON.stringify(DYNAMIC_IMPORT_FLAG)})] ?? ((s) => import(s));`;

async function routeDynamicImports(file) {
  const text = await readFile(file, 'utf8');
  const body = text.slice(text.indexOf(DYNAMIC_IMPORT_BANNER) + DYNAMIC_IMPORT_BANNER.length);
  if (new RegExp(`\\b${DYNAMIC_IMPORT_NAME}\\b`).test(body)) throw new Error(`bundle: ${DYNAMIC_IMPORT_NAME} is already a name in ${file}`);
  const routed = body.replace(/\bimport\(("[^"\\]+")\)/g, (whole, spec) => {
    const s = JSON.parse(spec);
    const known = /^\.\/buildyard-load-[\w-]+\.mjs$/.test(s) || EXTERNAL.some((e) => e === s || (e.endsWith('/*') && s.startsWith(e.slice(0, -1))));
    if (!known) throw new Error(`bundle: unexpected import(${spec}) in ${file}`);
    return `${DYNAMIC_IMPORT_NAME}(${spec})`;
  });
  if (/\bimport\(/.test(routed)) throw new Error(`bundle: an import() in ${file} is not a string literal`);
  await writeFile(file, text.slice(0, text.length - body.length) + routed);
}

/**
 * Builds the bundle into `outdir`; returns esbuild's metafile (inputs per output file) of its parts:
 * - dist/buildyard.cjs, CommonJS: src/main.ts with commander and the command tree. `--version` and
 *   `--help` (and every usage error) run on it alone, without Node's ES module loader, which costs
 *   Node 20 ~10-20 ms to start (an empty .mjs against an empty .cjs); its own part is small.
 * - dist/buildyard-load-<feature>.mjs, ES modules with code splitting: what the actions load
 *   (src/load/*.ts) and their shared chunks dist/buildyard-<hash>.mjs.
 * - dist/buildyard-grpc.cjs, CommonJS: the bundled @grpc/grpc-js (see grpcSwitch()), one instance
 *   for both parts.
 * The first two share no module instances: the light modules both use (ClientError, ExitCode,
 * the version) exist once in each, so the front recognizes a ClientError by name and exit code.
 */
export async function bundle({ outdir = join(appDir, 'dist'), external = EXTERNAL } = {}) {
  await mkdir(outdir, { recursive: true });
  // Chunk names change with their content: drop the previous build's, or dist/ keeps them all.
  for (const name of await readdir(outdir)) if (/^buildyard(-[A-Za-z0-9-]+)?\.[cm]js(\.map|\.id)?$/.test(name)) await rm(join(outdir, name));
  const common = {
    absWorkingDir: appDir,
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    // The workspace packages' TypeScript sources, as tests and `--conditions=source` use them.
    conditions: ['source'],
    external,
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
  };
  const loads = (await readdir(join(appDir, 'src/load'))).filter((f) => f.endsWith('.ts') && !f.includes('.test.'));
  const esm = await build({
    ...common,
    entryPoints: Object.fromEntries(loads.map((f) => [`buildyard-load-${basename(f, '.ts')}`, `src/load/${f}`])),
    outExtension: { '.js': '.mjs' },
    chunkNames: 'buildyard-[hash]',
    splitting: true,
    format: 'esm',
    plugins: [grpcSwitch(), workspaceBarrels()],
    banner: { js: COMMONJS_SHIM },
  });
  await dropUnusedShims(outdir, esm.metafile);
  const cjs = await build({
    ...common,
    entryPoints: { buildyard: 'src/main.ts' },
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    plugins: [esmLoads(), workspaceBarrels(), lazyChildProcess()],
    // version.ts reads ../package.json relative to its module: the .cjs file's own URL.
    define: { 'import.meta.url': '__buildyardModuleUrl' },
    banner: { js: `const __buildyardModuleUrl = require('node:url').pathToFileURL(__filename).href;\n${DYNAMIC_IMPORT_BANNER}` },
  });
  const front = join(outdir, 'buildyard.cjs');
  await routeDynamicImports(front);
  const grpc = await build({
    ...common,
    entryPoints: { [basename(GRPC_FILE, '.cjs')]: createRequire(join(appDir, 'package.json')).resolve('@grpc/grpc-js') },
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    plugins: [grpcClientFixes()],
  });
  // bin/codeCache.js names V8's code cache of a file by this hash: V8 itself checks only the length.
  for (const file of [front, join(outdir, GRPC_FILE)]) {
    await writeFile(`${file}.id`, `${createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 32)}\n`);
  }
  const parts = [esm, cjs, grpc].map((r) => r.metafile);
  return { inputs: Object.assign({}, ...parts.map((m) => m.inputs)), outputs: Object.assign({}, ...parts.map((m) => m.outputs)) };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const opts = Object.fromEntries(process.argv.slice(2).map((a) => {
    const m = /^--(outdir|metafile)=(.+)$/.exec(a);
    if (!m) { console.error(`bundle: unknown argument ${a}; usage: node scripts/bundle.mjs [--outdir=DIR] [--metafile=FILE]`); process.exit(2); }
    return [m[1], resolve(m[2])];
  }));
  const metafile = await bundle({ outdir: opts.outdir });
  if (opts.metafile) await writeFile(opts.metafile, JSON.stringify(metafile));
  const outputs = Object.entries(metafile.outputs).filter(([f]) => /\.[cm]js$/.test(f));
  const kib = outputs.reduce((n, [, o]) => n + o.bytes, 0) / 1024;
  const entry = outputs.find(([, o]) => o.entryPoint === 'src/main.ts')?.[0] ?? '';
  console.log(`bundled ${relative(process.cwd(), resolve(appDir, entry))} (+${outputs.length - 1} chunks, ${kib.toFixed(0)} KiB)`);
}
