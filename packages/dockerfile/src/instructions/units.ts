// The build's resource options as Docker writes them (docker/go-units): `--shm-size` and
// RUN --mount size= in RAMInBytes form, `--ulimit` in ParseUlimit form. Both front doors (the
// buildyard CLI and BuildKit's `shm-size` / `ulimit` frontend attributes) read them here.

/** go-units RAMInBytes: 64m, 1g, 512k, 1.5GiB, plain bytes (binary multiples). */
export function ramInBytes(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP]?)[iI]?[bB]?$/.exec(v);
  if (!m) return undefined;
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.floor(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/** One rlimit of RUN steps (`nofile=1024:2048`). */
export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

// go-units' ulimit names (setrlimit's resources, lower case without RLIMIT_).
const ULIMIT_NAMES = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

export class ResourceOptionError extends Error {}

/** go-units ParseUlimit: `name=soft[:hard]`, hard defaults to soft, soft may not exceed hard. */
export function parseUlimit(text: string): Ulimit {
  const eq = text.indexOf('=');
  if (eq < 0) throw new ResourceOptionError(`invalid ulimit argument: ${text}; write name=soft[:hard], e.g. nofile=1024:2048`);
  const name = text.slice(0, eq);
  if (!ULIMIT_NAMES.has(name)) throw new ResourceOptionError(`invalid ulimit type: ${name}; one of ${[...ULIMIT_NAMES].join(', ')}`);
  const values = text.slice(eq + 1).split(':');
  if (values.length > 2) throw new ResourceOptionError(`too many limit value arguments - ${text.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
  const number = (v: string): number => {
    if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new ResourceOptionError(`invalid ulimit value "${v}" in ${text}: a whole number`);
    return Number(v);
  };
  const soft = number(values[0]);
  const hard = values.length === 2 ? number(values[1]) : soft;
  if (soft > hard) throw new ResourceOptionError(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  return { name, soft, hard };
}

/** `--shm-size` as bytes; 0 or empty keeps the default 64MB /dev/shm. */
export function parseShmSize(text: string): number {
  if (text.trim() === '') return 0;
  const bytes = ramInBytes(text.trim());
  if (bytes === undefined) throw new ResourceOptionError(`invalid shm size "${text.slice(0, 40)}": write a size such as 128m, 1g or a number of bytes`);
  return bytes;
}
