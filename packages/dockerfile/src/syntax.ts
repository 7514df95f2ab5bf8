// `# syntax=IMAGE` names the frontend that reads a Dockerfile, as does dockerui's BUILDKIT_SYNTAX
// build arg (which wins). The official docker/dockerfile images of the 1.x line, labs included,
// are the language this frontend implements itself; any other frontend image cannot run here,
// and building without it would build something else, so it is refused.
const BUILT_IN = /^docker\/dockerfile(:(1(\.\d+){0,2}(-labs)?|labs|latest))?$/;

/** Throws one line when the Dockerfile asks for a frontend other than this one. */
export function checkSyntax(dockerfile: string, buildArgs: Readonly<Record<string, string>> = {}): void {
  const fromArg = buildArgs.BUILDKIT_SYNTAX;
  if (fromArg) return check(fromArg, 'BUILDKIT_SYNTAX=');
  for (const line of dockerfile.split('\n')) {
    const m = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) break; // parser directives end at the first line that is not one
    if (m[1]!.toLowerCase() === 'syntax') return check(m[2]!, '# syntax=');
  }
}

function check(image: string, shown: string): void {
  const name = image.replace(/^docker\.io\//, '').replace(/@sha256:[a-f0-9]{64}$/, '');
  if (BUILT_IN.test(name)) return;
  throw new Error(`${shown}${image.slice(0, 100)}: frontend images are not supported; remove it or use docker/dockerfile:1`);
}
