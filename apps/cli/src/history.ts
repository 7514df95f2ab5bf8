// `buildyard history ls | inspect | logs | rm`: thin wiring of buildx's history commands; the
// logic is in @buildyard/client (history.ts).
import { Option, type Command } from 'commander';
import type { BuilderConnection, RendererMode } from '@buildyard/client';

// The builder connection and the renderers load when a history command runs (start-up: see program.ts).
const historyModule = () => import('./load/history.js');
type HistoryModule = Awaited<ReturnType<typeof historyModule>>;

export interface HistoryIo {
  env: NodeJS.ProcessEnv;
  stderr: NodeJS.WriteStream;
  signal: AbortSignal;
  out(line: string): void;
}

const REF_HELP = 'a build id, a prefix of one, or ^N for the Nth latest (^0 the latest)';

export function registerHistoryCommands(program: Command, io: HistoryIo): void {
  const connect = async <T>(builder: string | undefined, fn: (conn: BuilderConnection, h: HistoryModule) => Promise<T>) => {
    const h = await historyModule();
    return h.withBuilderConnection(await new h.BuilderStore(undefined).resolve(builder, io.env), (conn) => fn(conn, h));
  };
  const history = program.command('history').description('Work with the build records the builder keeps (as docker buildx history)');

  history.command('ls').description('List build records, running builds first, then the newest')
    .option('--format <format>', 'table, or json for one object per line', 'table')
    .option('--no-trunc', 'do not truncate names')
    .option('--builder <name>', 'builder to use')
    .action(async (o: { format: string; trunc: boolean; builder?: string }) => {
      for (const line of await connect(o.builder, (conn, h) => h.historyLs(conn, { format: o.format, noTrunc: !o.trunc }))) io.out(line);
    });

  history.command('inspect').description('Show a build record: context, Dockerfile, target, platforms, status, duration, steps, images, error')
    .argument('[ref]', `${REF_HELP}; the latest build when absent`)
    .option('--format <format>', 'pretty, or json', 'pretty')
    .option('--builder <name>', 'builder to use')
    .action(async (ref: string | undefined, o: { format: string; builder?: string }) => {
      for (const line of await connect(o.builder, (conn, h) => h.historyInspect(conn, ref, o.format))) io.out(line);
    });

  history.command('logs').description('Print the log of a build (on stderr, as build progress), following it while it runs')
    .argument('[ref]', `${REF_HELP}; the latest build when absent`)
    .addOption(new Option('--progress <mode>', 'progress output').choices(['plain', 'rawjson', 'tty']).default('plain'))
    .option('--builder <name>', 'builder to use')
    .action(async (ref: string | undefined, o: { progress: RendererMode; builder?: string }) => {
      await connect(o.builder, (conn, h) => h.historyLogs(conn, ref, { mode: o.progress, stream: io.stderr, signal: io.signal }));
    });

  history.command('rm').description('Remove build records and their logs')
    .argument('[refs...]', REF_HELP)
    .option('--all', 'remove every finished build record')
    .option('--builder <name>', 'builder to use')
    .action(async (refs: string[], o: { all?: boolean; builder?: string }) => {
      await connect(o.builder, (conn, h) => h.historyRm(conn, refs, Boolean(o.all)));
    });
}
