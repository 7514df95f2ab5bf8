// `buildyard bake`: thin wiring of @buildyard/bake (buildx bake's flags and meaning).
import { Option, type Command } from 'commander';
import { PROGRESS_MODES } from '@buildyard/client';

const collect = (value: string, prev: string[] = []): string[] => [...prev, value];
// The bake parsers and the build machinery load when bake runs, not at start-up (see program.ts).
const bakeModule = () => import('./load/bake.js');

export interface BakeIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  signal: AbortSignal;
}

export function registerBakeCommand(program: Command, io: BakeIo, setExit: (code: number) => void): void {
  program.command('bake')
    .alias('f')
    .description('Build the targets of a bake file (docker-bake.hcl/.json, compose.yaml), all at once, as docker buildx bake')
    .argument('[target...]', 'targets or groups to build (default: the "default" group)')
    .option('-f, --file <file>', 'bake file (repeatable; default: compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml, docker-bake.json, docker-bake.hcl and their .override files)', collect)
    .option('--set <target.key=value>', 'override a target value, e.g. app.platform=linux/arm64 or *.args.X=1 (repeatable)', collect)
    .option('--print', 'print the resolved targets as JSON, without building')
    .option('--push', 'shorthand for --set=*.push=true (push every target\'s image)')
    .option('--load', 'shorthand for --set=*.output=type=docker (no Docker engine here: docker-archive files)')
    .option('--no-cache', 'do not use the cache for any target')
    .option('--pull', 'always check the registry for newer base images')
    .addOption(new Option('--progress <mode>', 'progress output').choices([...PROGRESS_MODES]).default('auto'))
    .option('--metadata-file <file>', 'write every target\'s build result metadata to this JSON file')
    .option('--provenance <value>', 'shorthand for --set=*.attest=type=provenance (e.g. mode=max, false)')
    .option('--sbom <value>', 'shorthand for --set=*.attest=type=sbom')
    .option('--builder <name>', 'builder to use (default: BUILDYARD_BUILDER or the current builder)')
    .action(async (targets: string[], o: Record<string, unknown>) => {
      const { runBake } = await bakeModule();
      setExit(await runBake({
        targets,
        flags: {
          file: o.file as string[] | undefined,
          set: o.set as string[] | undefined,
          print: !!o.print,
          push: !!o.push,
          load: !!o.load,
          noCache: o.cache === false ? true : undefined,
          pull: o.pull ? true : undefined,
          progress: o.progress as string | undefined,
          metadataFile: o.metadataFile as string | undefined,
          provenance: o.provenance as string | undefined,
          sbom: o.sbom as string | undefined,
          builder: o.builder as string | undefined,
        },
        env: io.env, stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, signal: io.signal,
      }));
    });
}
