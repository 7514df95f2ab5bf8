// The commander wiring of `buildyard`; the logic lives in @buildyard/client.
import { Command, CommanderError, Option } from 'commander';
// Start-up: only light values (errors, exit codes, flag constants and parsers) are imported
// statically; the bundle (scripts/bundle.mjs) tree-shakes the rest of @buildyard/client away.
// gRPC, proto stubs, progress renderers, the registry client and the local cluster load in the
// actions that use them, from ./load/*: `const { runBuild } = await buildModule();`. A static
// import of one of those here puts it on the path of `--version` (bundle.test.ts catches it).
import {
  ClientError, ExitCode, PROGRESS_MODES, parseSize,
  type BuildFlags, type DiskUsageResponse, type InfoResponse, type ListWorkersResponse, type PruneResponse,
} from '@buildyard/client';
import { registerUpCommands } from './up.js';
import { registerBakeCommand } from './bake.js';
import { registerHistoryCommands } from './history.js';
import { BuildyardCommand } from './suggest.js';
import { CLIENT_VERSION } from './version.js';

const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    the build (or the operation) failed
  2    usage error (bad flags or arguments)
  3    cannot reach the builder or registry, or the credentials were refused
  130  interrupted (Ctrl-C cancels the build)

Environment:
  BUILDYARD_BUILDER  builder to use: a name from 'buildyard builder ls', or an endpoint tcp://host:port
  BUILDYARD_TOKEN    bearer token for the builder (when it has no --token-file)
  DOCKER_CONFIG      directory of the docker config.json holding registry credentials
  XDG_CONFIG_HOME    where buildyard/builders.json is kept (default ~/.config)`;

const collect = (value: string, prev: string[] = []): string[] => [...prev, value];
/** As collect, for `--no-cache-filter`: commander takes any `--no-` flag for a negation, whose value starts as `true`. */
const collectNegatable = (value: string, prev: unknown): string[] => [...(Array.isArray(prev) ? prev as string[] : []), value];

interface Io {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  signal: AbortSignal;
}

// The lazily loaded parts (see the imports above); each is one chunk of the bundle.
const buildModule = () => import('./load/build.js');
const callModule = () => import('./load/call.js');
const builderModule = () => import('./load/builders.js');
const registryModule = () => import('./load/registry.js');

async function readStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stdin) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts).toString('utf8');
}

/** Asks on stderr and reads one line from stdin (a closed stdin answers ""). */
function ask(io: Io, question: string): Promise<string> {
  io.stderr.write(question);
  return new Promise((resolve) => {
    let buf = '';
    const done = (answer: string) => {
      io.stdin.off('data', onData);
      io.stdin.off('end', onEnd);
      io.stdin.pause();
      resolve(answer);
    };
    const onData = (d: Buffer | string) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) done(buf.slice(0, i));
    };
    const onEnd = () => done(buf);
    io.stdin.on('data', onData);
    io.stdin.on('end', onEnd);
  });
}

export function createProgram(io: Io, setExit: (code: number) => void): Command {
  const out = (line: string) => { io.stdout.write(`${line}\n`); };
  const err = (line: string) => { io.stderr.write(`${line}\n`); };
  const store = async () => new (await builderModule()).BuilderStore(undefined);

  const program = new BuildyardCommand('buildyard')
    .description('Build container images on a remote buildyard builder (buildx-compatible flags)')
    .version(CLIENT_VERSION)
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride()
    // Usage errors are one line, as every other error: commander's hint lines are folded in.
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`${s.trim().replace(/\s*\n\s*/g, ' ')} (run with --help for usage)\n`),
    });

  program.command('build')
    .description('Build an image from a Dockerfile and a context (a directory, an http(s) tarball URL, or - for a Dockerfile on stdin)')
    .argument('[context]', 'PATH | URL | -', '.')
    .option('-f, --file <path>', 'Dockerfile (default: PATH/Dockerfile; - reads stdin)')
    .option('-t, --tag <name>', 'name and tag, name:tag (repeatable)', collect)
    .option('--platform <list>', 'target platforms, comma separated (repeatable)', collect)
    .option('--build-arg <key=value>', 'build-time variable; a bare KEY takes its value from the environment (repeatable)', collect)
    .option('--target <stage>', 'build this stage')
    .option('--no-cache', 'do not use the cache')
    .option('--no-cache-filter <stages>', 'do not use the cache for these stages, by name, comma separated (repeatable)', collectNegatable)
    .option('--pull', 'always check the registry for newer base images')
    .option('--label <key=value>', 'image label (repeatable)', collect)
    .option('--push', 'shorthand for --output type=image,push=true (with the tags)')
    .option('--load', 'no Docker engine here: writes a docker-archive NAME.tar in the current directory')
    .option('-o, --output <spec>', 'type=local,dest=DIR | type=tar|oci|docker,dest=FILE | type=image,name=REF,push=true | type=registry | DIR (repeatable)', collect)
    .option('--cache-from <spec>', 'external cache source, e.g. type=registry,ref=REF (repeatable)', collect)
    .option('--cache-to <spec>', 'cache export, e.g. type=registry,ref=REF,mode=max (repeatable)', collect)
    .option('--secret <spec>', 'secret for RUN --mount=type=secret: id=ID,src=FILE | id=ID,env=VAR (repeatable)', collect)
    .option('--ssh <spec>', 'SSH agent for RUN --mount=type=ssh: default ($SSH_AUTH_SOCK) | ID=SOCKET | ID=KEY[,KEY] (repeatable)', collect)
    .option('--network <mode>', 'network for RUN: default | none | host')
    .option('--allow <entitlement>', 'allow an entitlement the server grants your tenant: network.host | security.insecure (comma separated, repeatable)', collect)
    .option('--add-host <name:ip>', 'add a name to the /etc/hosts of RUN steps (repeatable)', collect)
    .option('--build-context <name=value>', 'named context for FROM/COPY --from/RUN --mount from=: DIR | docker-image://REF | git URL (repeatable)', collect)
    .option('--annotation <[type:]key=value>', 'OCI annotation; type index, manifest (default) or manifest[os/arch] (repeatable)', collect)
    .option('--iidfile <file>', 'write the image digest (the index digest for several platforms) to this file')
    .option('--attest <spec>', 'attestation: type=provenance[,mode=min|max] | type=sbom | type=TYPE,disabled=true (repeatable)', collect)
    .option('--provenance <value>', 'shorthand for --attest=type=provenance: true | false | mode=min|max[,...] (default: mode=min on images)')
    .option('--sbom <value>', 'shorthand for --attest=type=sbom: true | false')
    .option('--shm-size <bytes>', 'size of /dev/shm in RUN steps, e.g. 128m or 1g (default 64m)')
    .option('--ulimit <type=soft[:hard]>', 'rlimit of RUN steps, e.g. nofile=1024:2048 (repeatable; at most the worker\'s own)', collect)
    .option('--cgroup-parent <group>', 'accepted as docker buildx accepts it, and ignored: a remote builder runs each RUN step in a cgroup of its own')
    .addOption(new Option('--progress <mode>', 'progress output').choices([...PROGRESS_MODES]).default('auto'))
    .option('-q, --quiet', 'print only the image digest on success')
    .option('--metadata-file <file>', 'write the build result metadata (buildx keys) to this JSON file')
    .option('--builder <name>', 'builder to use (default: BUILDYARD_BUILDER or the current builder)')
    .option('--call <request>', 'what to do instead of building: build | check | outline | targets [,format=json] (answered from the Dockerfile, no upload)')
    .option('--check', 'shorthand for --call=check: lint the Dockerfile, exit 1 on warnings')
    .action(async (context: string, opts: Record<string, unknown>) => {
      if (opts.call !== undefined || opts.check) {
        const { parseCall, runCall } = await callModule();
        const call = parseCall(opts.call as string | undefined, !!opts.check);
        if (call.name !== 'build') {
          setExit(await runCall({ call, context, file: opts.file as string | undefined, target: opts.target as string | undefined, buildArg: opts.buildArg as string[] | undefined, env: io.env, stdin: io.stdin, stdout: io.stdout }));
          return;
        }
      }
      // buildx hands it to the daemon; a shared fleet cannot let a build pick the host's cgroup.
      if (opts.cgroupParent !== undefined) err('WARNING: --cgroup-parent is ignored: a remote builder runs each RUN step in a cgroup of its own, with the worker\'s limits');
      const flags: BuildFlags = {
        file: opts.file as string | undefined,
        tag: opts.tag as string[] | undefined,
        platform: opts.platform as string[] | undefined,
        buildArg: opts.buildArg as string[] | undefined,
        target: opts.target as string | undefined,
        noCache: opts.cache === false,
        noCacheFilter: Array.isArray(opts.cacheFilter) ? opts.cacheFilter as string[] : undefined,
        pull: !!opts.pull,
        label: opts.label as string[] | undefined,
        push: !!opts.push,
        load: !!opts.load,
        output: opts.output as string[] | undefined,
        cacheFrom: opts.cacheFrom as string[] | undefined,
        cacheTo: opts.cacheTo as string[] | undefined,
        secret: opts.secret as string[] | undefined,
        ssh: opts.ssh as string[] | undefined,
        network: opts.network as string | undefined,
        allow: opts.allow as string[] | undefined,
        addHost: opts.addHost as string[] | undefined,
        buildContext: opts.buildContext as string[] | undefined,
        annotation: opts.annotation as string[] | undefined,
        iidfile: opts.iidfile as string | undefined,
        attest: opts.attest as string[] | undefined,
        provenance: opts.provenance as string | undefined,
        sbom: opts.sbom as string | undefined,
        shmSize: opts.shmSize as string | undefined,
        ulimit: opts.ulimit as string[] | undefined,
        progress: opts.progress as string | undefined,
        quiet: !!opts.quiet,
        metadataFile: opts.metadataFile as string | undefined,
        builder: opts.builder as string | undefined,
      };
      const { runBuild } = await buildModule();
      setExit(await runBuild({ context, flags, env: io.env, stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, signal: io.signal }));
    });

  const builder = program.command('builder').description('Manage builders (named endpoints kept in $XDG_CONFIG_HOME/buildyard/builders.json)');
  builder.command('create')
    .description('Add a builder: tcp://host:port (plaintext) or tls://host:port')
    .argument('<endpoint>', 'tcp://host:port | tls://host:port')
    .option('--name <name>', 'builder name (default: derived from the endpoint host)')
    .option('--token-file <file>', 'file holding the bearer token')
    .option('--tls-ca <file>', 'CA certificate (PEM) to verify the builder')
    .option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS')
    .option('--tls-key <file>', 'client key (PEM) for mutual TLS')
    .option('--use', 'make it the current builder')
    .action(async (endpoint: string, o: { name?: string; tokenFile?: string; tlsCa?: string; tlsCert?: string; tlsKey?: string; use?: boolean }) => {
      const name = o.name ?? endpoint.replace(/^[a-z]+:\/\//, '').replace(/[^a-zA-Z0-9_.-]/g, '-');
      const b = await (await store()).create({ name, endpoint, tokenFile: o.tokenFile, tls: { ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey } }, { use: o.use });
      out(b.name);
    });
  builder.command('use').description('Make a builder the current one').argument('<name>')
    .action(async (name: string) => { await (await store()).use(name); });
  builder.command('rm').description('Remove a builder').argument('<name>')
    .action(async (name: string) => { await (await store()).remove(name); });
  // docker buildx ls's columns: NAME/NODE, DRIVER/ENDPOINT, STATUS, BUILDKIT (here the builder's
  // and each worker's version), PLATFORMS; the workers are the builder's nodes.
  const listBuilders = async () => {
    const { BuilderStore, withBuilderConnection, table } = await builderModule();
    const s = new BuilderStore(undefined);
    const { builders, current } = await s.list();
    const envBuilder = io.env.BUILDYARD_BUILDER;
    const names: (string | undefined)[] = builders.map((b) => b.name);
    if (envBuilder?.includes('://')) names.unshift(envBuilder);
    if (names.length === 0) names.push(undefined); // the default local endpoint
    const rows: string[][] = [['NAME/NODE', 'DRIVER/ENDPOINT', 'STATUS', 'BUILDKIT', 'PLATFORMS']];
    for (const n of names) {
      const rb = await s.resolve(n, { ...io.env, BUILDYARD_BUILDER: '' });
      const active = envBuilder ? envBuilder === rb.name : (current ? current === rb.name : rb.source === 'default');
      try {
        const { info, res } = await withBuilderConnection(rb, async (conn) => ({
          info: await conn.unary<InfoResponse>('builder info', (md, opt, cb) => conn.control.info({}, md, opt, cb), 5_000),
          res: await conn.unary<ListWorkersResponse>('list workers', (md, opt, cb) => conn.control.listWorkers({}, md, opt, cb), 5_000),
        }));
        const platforms = new Set<string>();
        for (const w of res.workers) { w.nativePlatforms.forEach((p) => platforms.add(p)); w.emulatedPlatforms.forEach((p) => platforms.add(`${p}*`)); }
        rows.push([`${rb.name}${active ? ' *' : ''}`, rb.endpoint, 'running', info.version || '-', [...platforms].join(', ')]);
        for (const w of res.workers) {
          const plats = [...w.nativePlatforms, ...w.emulatedPlatforms.map((p) => `${p} (emulated)`)].join(', ');
          rows.push([`  ${w.id}`, '', w.draining ? 'draining' : 'ready', w.version || '-', plats]);
        }
      } catch (e) {
        const why = e instanceof ClientError && e.exitCode === ExitCode.Unreachable && /refused the credentials/.test(e.message) ? 'unauthorized' : 'unreachable';
        rows.push([`${rb.name}${active ? ' *' : ''}`, rb.endpoint, why]);
      }
    }
    for (const line of table(rows)) out(line);
    out('(* after a platform: emulated)');
  };
  builder.command('ls').description('List builders and their workers (native and emulated platforms)').action(listBuilders);
  program.command('ls').description('List builders and their workers, as docker buildx ls (same as builder ls)').action(listBuilders);
  builder.command('inspect').description('Show a builder: its endpoint, version, tenant and workers').argument('[name]')
    .action(async (name: string | undefined) => {
      const { BuilderStore, withBuilderConnection, formatInfo, formatWorkers } = await builderModule();
      const rb = await new BuilderStore(undefined).resolve(name, io.env);
      await withBuilderConnection(rb, async (conn) => {
        const info = await conn.unary<InfoResponse>('builder info', (md, o, cb) => conn.control.info({}, md, o, cb));
        const workers = await conn.unary<ListWorkersResponse>('list workers', (md, o, cb) => conn.control.listWorkers({}, md, o, cb));
        out(`Name:      ${rb.name}`);
        out(`Endpoint:  ${rb.endpoint}${rb.tls ? ' (TLS)' : ''}`);
        out(`Token:     ${rb.token ? 'set' : 'none'}`);
        for (const l of formatInfo(info)) out(l);
        out('');
        for (const l of formatWorkers(workers.workers)) out(l);
      });
    });

  const imagetools = program.command('imagetools').description('Work with images and indexes in a registry');
  imagetools.command('inspect').description('Show an image or index').argument('<ref>')
    .option('--raw', 'print the manifest exactly as the registry serves it')
    .action(async (ref: string, o: { raw?: boolean }) => {
      const { inspectImage, registryClient } = await registryModule();
      const res = await inspectImage(registryClient(io.env), ref);
      if (o.raw) io.stdout.write(res.raw.toString('utf8').endsWith('\n') ? res.raw : Buffer.concat([res.raw, Buffer.from('\n')]));
      else out(res.text);
    });
  imagetools.command('create').description('Merge images and indexes into one multi-platform index and push it')
    .argument('<source...>', 'source images or indexes')
    .requiredOption('-t, --tag <ref>', 'target reference (repeatable)', collect)
    .option('--annotation <key=value>', 'index annotation (repeatable)', collect)
    .option('--dry-run', 'print the index instead of pushing it')
    .action(async (sources: string[], o: { tag: string[]; annotation?: string[]; dryRun?: boolean }) => {
      const annotations = Object.fromEntries((o.annotation ?? []).map((a) => { const i = a.indexOf('='); return i < 0 ? [a, ''] : [a.slice(0, i), a.slice(i + 1)]; }));
      const { createIndex, registryClient } = await registryModule();
      const res = await createIndex(registryClient(io.env), { tags: o.tag, sources, annotations, dryRun: o.dryRun, onProgress: (l) => err(l) });
      if (o.dryRun) out(JSON.stringify(res.index, null, 2));
      else out(res.digest);
    });

  program.command('du').description('Show the build cache disk usage')
    .option('--builder <name>', 'builder to use')
    .option('--verbose', 'one block per record: ID, description, reclaimable, shared, size, usage count, last used')
    .action(async (o: { builder?: string; verbose?: boolean }) => {
      const { BuilderStore, withBuilderConnection, formatDiskUsage, formatDiskUsageVerbose } = await builderModule();
      const rb = await new BuilderStore(undefined).resolve(o.builder, io.env);
      const du = await withBuilderConnection(rb, (conn) => conn.unary<DiskUsageResponse>('disk usage', (md, opt, cb) => conn.control.diskUsage({ verbose: !!o.verbose }, md, opt, cb), 60_000));
      for (const l of (o.verbose ? formatDiskUsageVerbose : formatDiskUsage)(du)) out(l);
    });

  program.command('prune').description('Remove build cache')
    .option('-a, --all', 'remove all cache, not just unused records')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--keep-storage <size>', 'keep this much cache, e.g. 10GB or 500MB')
    .option('--builder <name>', 'builder to use')
    .action(async (o: { all?: boolean; force?: boolean; keepStorage?: string; builder?: string }) => {
      const keep = o.keepStorage ? parseSize(o.keepStorage, '--keep-storage') : 0;
      const { BuilderStore, withBuilderConnection, formatPrune } = await builderModule();
      const rb = await new BuilderStore(undefined).resolve(o.builder, io.env);
      if (!o.force) {
        const what = o.all ? 'all build cache' : 'all dangling build cache';
        const answer = await ask(io, `WARNING! This will remove ${what} on builder "${rb.name}". Are you sure you want to continue? [y/N] `);
        if (!/^y(es)?$/i.test(answer.trim())) { err('Aborted.'); setExit(ExitCode.BuildFailed); return; }
      }
      const res = await withBuilderConnection(rb, (conn) => conn.unary<PruneResponse>('prune', (md, opt, cb) => conn.control.prune({ all: !!o.all, keepStorage: keep, keepDurationMs: 0, filters: [] }, md, opt, cb), 300_000));
      for (const l of formatPrune(res)) out(l);
    });

  program.command('login').description('Log in to a registry (stored in DOCKER_CONFIG/config.json or ~/.docker/config.json)')
    .argument('<registry>', 'registry host[:port]')
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (registry: string, o: { username?: string; password?: string; passwordStdin?: boolean }) => {
      let password = o.password ?? '';
      if (o.passwordStdin) {
        if (o.password) throw new ClientError('--password and --password-stdin are mutually exclusive; use --password-stdin', ExitCode.Usage);
        password = (await readStdin(io.stdin)).replace(/\r?\n$/, '');
      } else if (o.password) err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
      else throw new ClientError('login: no password; pipe it with --password-stdin (e.g. echo $TOKEN | buildyard login -u USER --password-stdin REGISTRY)', ExitCode.Usage);
      const { login } = await registryModule();
      const path = await login({ registry, username: o.username ?? '', password, env: io.env });
      err(`credentials saved in ${path}`);
      out('Login Succeeded');
    });

  program.command('version').description('Show the client\'s version, and the builder\'s when --builder names one that answers')
    .option('--builder <name>', 'also ask this builder (name or tcp://host:port) for its version')
    .action(async (o: { builder?: string }) => {
      // buildx prints "github.com/docker/buildx vX.Y.Z"; the builder's line follows when asked for.
      out(`buildyard v${CLIENT_VERSION}`);
      if (o.builder === undefined) return;
      const { BuilderStore, withBuilderConnection } = await builderModule();
      const rb = await new BuilderStore(undefined).resolve(o.builder, io.env);
      const info = await withBuilderConnection(rb, (conn) => conn.unary<InfoResponse>('builder info', (md, opt, cb) => conn.control.info({}, md, opt, cb), 15_000));
      out(`builder ${rb.name} (${rb.endpoint}) ${info.version || 'unknown'}`);
    });

  registerUpCommands(program);
  registerBakeCommand(program, io, setExit);
  registerHistoryCommands(program, { env: io.env, stderr: io.stderr, signal: io.signal, out });
  return program;
}

/**
 * A ClientError from this module's copy of the class, or from the build code's: in the bundle the
 * actions' ES module chunks have their own copy (see scripts/bundle.mjs), so `instanceof` alone
 * would turn their usage and unreachable-builder errors into exit code 1.
 */
function isClientError(e: unknown): e is ClientError {
  return e instanceof ClientError || (e instanceof Error && e.name === 'ClientError' && typeof (e as ClientError).exitCode === 'number');
}

/** Runs the CLI; returns the exit code. */
export async function run(argv: string[], io?: Partial<Io>): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(ExitCode.Interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const full: Io = {
    env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, signal: controller.signal, ...io,
  };
  let code: number = ExitCode.Success;
  const program = createProgram(full, (c) => { code = c; });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      code = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0 ? 0 : ExitCode.Usage;
    } else if (isClientError(e)) {
      full.stderr.write(`ERROR: ${e.message}\n`);
      code = e.exitCode;
    } else {
      full.stderr.write(`ERROR: ${(e as Error)?.message ?? String(e)}\n`);
      code = controller.signal.aborted ? ExitCode.Interrupted : ExitCode.BuildFailed;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (controller.signal.aborted && code !== ExitCode.Success) code = ExitCode.Interrupted;
  return code;
}
