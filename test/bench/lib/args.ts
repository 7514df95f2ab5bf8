// Command line of `npm run bench`: `--only=a,b` selects benchmarks, `--quick` shrinks inputs
// and sample counts, `--out=FILE` moves the JSON report.

export interface BenchArgs {
  only: string[] | undefined;
  quick: boolean;
  out: string | undefined;
}

export function parseBenchArgs(argv: readonly string[], known: readonly string[]): BenchArgs {
  const args: BenchArgs = { only: undefined, quick: false, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value; e.g. ${flag}=${flag === '--only' ? known[0] : 'results.json'}`);
      return v;
    };
    if (flag === '--quick') args.quick = true;
    else if (flag === '--only') {
      const names = value().split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = names.filter((n) => !known.includes(n));
      if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')} in --only; choose from ${known.join(', ')}`);
      args.only = [...(args.only ?? []), ...names];
    } else if (flag === '--out') args.out = value();
    else if (flag === '--help' || flag === '-h') throw new Error(`usage: npm run bench -- [--quick] [--only=${known.join(',')}] [--out=FILE]`);
    else throw new Error(`unknown option ${arg}; usage: npm run bench -- [--quick] [--only=${known.join(',')}] [--out=FILE]`);
  }
  return args;
}
