// Threads of their own for the per-file calls of a context's many small files: an upload's
// writes and renames, the grants' links, a worker tree's stats, links and copies,
// each batch as plain synchronous calls in one message. Through libuv's thread pool every call
// was a round trip of its own (a file's upload cost four: open, write, close, rename),
// each a promise on the main thread and a futex wake-up, with four threads queuing on the same
// kernel locks: measured on 20,000 files of 10 KB, 6-9 s of CPU against 4-4.5 s for the same
// syscalls made one after another, most of the difference on the main thread.
import { Worker } from 'node:worker_threads';

/** One small file to create. */
export interface StagedWrite {
  path: string;
  data: Uint8Array;
  mode: number;
}

/**
 * One entry of a worker's context tree that cannot be a hardlink: a copy of a store blob (with
 * `mode` when the blob's differs) or a symlink, then given its modification time (seconds).
 */
export type PlacedEntry =
  | { path: string; time: number; from: string; mode?: number }
  | { path: string; time: number; linkTarget: string };

/** A stat as materializeContext needs it; `mtimeNs` as a decimal string. */
export interface FileStat {
  dev: number;
  mode: number;
  mtimeNs: string;
}

type Request =
  | { op: 'write'; items: StagedWrite[] }
  | { op: 'rename'; items: [from: string, to: string][] }
  | { op: 'link'; items: [existing: string, newPath: string][] }
  | { op: 'hardlink'; items: [existing: string, newPath: string][] }
  | { op: 'stat'; items: string[] }
  | { op: 'place'; items: PlacedEntry[] };

// Plain CommonJS evaluated as the thread's body: no module of this package to resolve (the
// sources run through tsx in tests, as built files in production) and nothing to transpile.
// `write`, `rename`, `place` and `hardlink` stop at the first failure; `link` and `stat` answer
// per item. A copy never replaces what is at its path (COPYFILE_EXCL: not even through a
// symlink there), nor does a link (EEXIST); a tree's hard link is only made to a regular file
// (link(2) would link a symlink itself, never its target, but nothing else was written as one).
const THREAD_BODY = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', ({ id, op, items }) => {
  try {
    let out;
    if (op === 'write') {
      for (const f of items) fs.writeFileSync(f.path, f.data, { flag: 'wx', mode: f.mode });
    } else if (op === 'rename') {
      for (const [from, to] of items) fs.renameSync(from, to);
    } else if (op === 'link') {
      out = items.map(([existing, path]) => {
        try { fs.linkSync(existing, path); return ''; } catch (err) { return err.code || String(err.message); }
      });
    } else if (op === 'hardlink') {
      for (const [existing, path] of items) {
        if (!fs.lstatSync(existing).isFile()) throw Object.assign(new Error(existing + ' is not a regular file'), { code: 'EINVAL' });
        fs.linkSync(existing, path);
      }
    } else if (op === 'place') {
      for (const e of items) {
        if (e.linkTarget !== undefined) {
          fs.symlinkSync(e.linkTarget, e.path);
          fs.lutimesSync(e.path, e.time, e.time);
        } else {
          fs.copyFileSync(e.from, e.path, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
          if (e.mode !== undefined) fs.chmodSync(e.path, e.mode);
          fs.utimesSync(e.path, e.time, e.time);
        }
      }
    } else if (op === 'stat') {
      out = items.map((path) => {
        const st = fs.statSync(path, { bigint: true, throwIfNoEntry: false });
        return st ? { dev: Number(st.dev), mode: Number(st.mode), mtimeNs: String(st.mtimeNs) } : null;
      });
    }
    parentPort.postMessage({ id, out });
  } catch (err) {
    parentPort.postMessage({ id, error: { message: String(err && err.message), code: err && err.code } });
  }
});
`;

/** A file thread and how many of its requests are unanswered. */
interface FileThread {
  worker: Worker;
  busy: number;
}

/**
 * Two threads at most: a batch's calls are mostly the kernel's work, which a second core
 * shares (a worker's tree of 2,000 copies: see materializeContext); more only queue on the
 * same directory and journal locks.
 */
export const FILE_THREADS = 2;
const threads: FileThread[] = [];
let nextId = 0;
const waiting = new Map<number, { thread: FileThread; resolve: (out: unknown) => void; reject: (err: Error) => void }>();

function start(): FileThread {
  const worker = new Worker(THREAD_BODY, { eval: true });
  const thread: FileThread = { worker, busy: 0 };
  // Idle, it must not keep the process alive; with requests waiting, ref() holds it.
  worker.unref();
  worker.on('message', ({ id, out, error }: { id: number; out?: unknown; error?: { message: string; code?: string } }) => {
    const w = waiting.get(id);
    if (!w) return;
    waiting.delete(id);
    if (--thread.busy === 0) worker.unref();
    if (!error) w.resolve(out);
    else w.reject(Object.assign(new Error(error.message), error.code ? { code: error.code } : {}));
  });
  const fail = (err: Error) => {
    const at = threads.indexOf(thread);
    if (at >= 0) threads.splice(at, 1);
    for (const [id, w] of waiting) {
      if (w.thread !== thread) continue;
      waiting.delete(id);
      w.reject(err);
    }
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`the context file thread exited (code ${code})`)));
  threads.push(thread);
  return thread;
}

/** The idle thread, else a new one while there are fewer than FILE_THREADS, else the least busy. */
function leastBusy(): FileThread {
  const idle = threads.find((t) => t.busy === 0);
  if (idle) return idle;
  if (threads.length < FILE_THREADS) return start();
  return threads.reduce((a, b) => (b.busy < a.busy ? b : a));
}

function request<T>(req: Request): Promise<T> {
  const thread = leastBusy();
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, { thread, resolve: resolve as (out: unknown) => void, reject });
    if (thread.busy++ === 0) thread.worker.ref();
    thread.worker.postMessage({ id, ...req });
  });
}

/** Creates each file (failing if it exists) with its mode (less the umask). */
export async function writeStaged(items: StagedWrite[]): Promise<void> {
  if (items.length > 0) await request({ op: 'write', items });
}

/** Renames each pair in order; the first failure stops the rest. */
export async function renameStaged(items: [from: string, to: string][]): Promise<void> {
  if (items.length > 0) await request({ op: 'rename', items });
}

/** Hardlinks each pair; per pair '' when linked, else the error's code (EEXIST, ENOENT, EXDEV, ...). */
export async function linkEach(items: [existing: string, newPath: string][]): Promise<string[]> {
  return items.length === 0 ? [] : request<string[]>({ op: 'link', items });
}

/** Hardlinks each pair in order, `existing` being a regular file (not followed if a symlink); the first failure stops the rest. */
export async function hardlinkEach(items: [existing: string, newPath: string][]): Promise<void> {
  if (items.length > 0) await request({ op: 'hardlink', items });
}

/** Stats each path (following links); undefined where nothing is. */
export async function statEach(paths: string[]): Promise<(FileStat | undefined)[]> {
  if (paths.length === 0) return [];
  return (await request<(FileStat | null)[]>({ op: 'stat', items: paths })).map((s) => s ?? undefined);
}

/** Makes each entry in order; the first failure stops the rest of its batch. */
export async function placeEach(items: PlacedEntry[]): Promise<void> {
  if (items.length > 0) await request({ op: 'place', items });
}
