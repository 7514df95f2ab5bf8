// Node has no xattr API; these helpers batch the `attr` package's getfattr/setfattr so a whole
// tree costs one process, not one per file.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Xattrs = Map<string, Buffer>;

const ATTR_HINT = 'install the "attr" package (apt-get install -y attr)';

/** getfattr escapes bytes that would break its line format as \ooo octal. */
function unescapeOctal(text: string): string {
  if (!text.includes('\\')) return text;
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else bytes.push(raw[i]);
  }
  return Buffer.from(bytes).toString('utf8');
}

function escapeOctal(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte <= 0x20 || byte === 0x5c || byte === 0x3d || byte >= 0x7f) out += '\\' + byte.toString(8).padStart(3, '0');
    else out += String.fromCharCode(byte);
  }
  return out;
}

function decodeValue(value: string): Buffer {
  if (value.startsWith('0s')) return Buffer.from(value.slice(2), 'base64');
  if (value.startsWith('0x')) return Buffer.from(value.slice(2), 'hex');
  if (value.startsWith('"') && value.endsWith('"')) return Buffer.from(unescapeOctal(value.slice(1, -1)), 'utf8');
  return Buffer.from(value, 'utf8');
}

/** Parses `getfattr -d -e base64` output into absolute path -> xattrs. */
export function parseGetfattrDump(text: string): Map<string, Xattrs> {
  const result = new Map<string, Xattrs>();
  let current: Xattrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      result.set(unescapeOctal(line.slice('# file: '.length)), current);
    } else if (line.length > 0 && current && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      if (eq < 0) current.set(unescapeOctal(line), Buffer.alloc(0));
      else current.set(unescapeOctal(line.slice(0, eq)), decodeValue(line.slice(eq + 1)));
    }
  }
  return result;
}

/** Reads every xattr (all namespaces, without following symlinks) under `dir` in one getfattr run. */
export async function readXattrsTree(dir: string): Promise<Map<string, Xattrs>> {
  const text = await new Promise<string>((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? new Error(`getfattr not found while reading xattrs of ${dir}: ${ATTR_HINT}`) : e);
    });
    child.on('close', (code) => {
      // getfattr exits 1 when some file has no xattr support (e.g. a fifo on some fs); data is still complete.
      if (code !== 0 && err.trim().length > 0 && !/Operation not supported/.test(err)) {
        reject(new Error(`getfattr failed on ${dir}: ${err.trim().split('\n')[0]}`));
      } else resolve(Buffer.concat(out).toString('utf8'));
    });
  });
  return parseGetfattrDump(text);
}

/** Writes xattrs for many files with one `setfattr --restore` run. Paths must be absolute. */
export async function restoreXattrs(items: Iterable<{ path: string; xattrs: Xattrs }>): Promise<void> {
  let dump = '';
  for (const { path, xattrs } of items) {
    if (xattrs.size === 0) continue;
    dump += `# file: ${escapeOctal(path)}\n`;
    for (const [name, value] of xattrs) dump += `${escapeOctal(name)}=0s${value.toString('base64')}\n`;
    dump += '\n';
  }
  if (dump.length === 0) return;
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-xattrs-'));
  try {
    const file = join(dir, 'restore');
    await writeFile(file, dump);
    await new Promise<void>((resolve, reject) => {
      execFile('setfattr', ['-h', `--restore=${file}`], (error, _stdout, stderr) => {
        if (!error) return resolve();
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(new Error(`setfattr not found while applying xattrs: ${ATTR_HINT}`));
        reject(new Error(`setfattr failed: ${String(stderr).trim().split('\n')[0] || error.message}`));
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
