import { mkdir, readFile, readdir, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheIndex, CacheRecord, NewCacheRecord } from './CacheRecord.js';

/** A cache index in a directory of JSON files: the single-machine index used without Redis. */
export class LocalCacheIndex implements CacheIndex {
  constructor(private readonly dir: string) {}

  private file(key: string): string {
    return join(this.dir, key.replace(/[^A-Za-z0-9]/g, '_') + '.json');
  }

  private async read(key: string): Promise<CacheRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(key), 'utf8')) as CacheRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async write(record: CacheRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.file(record.key)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record));
    await rename(tmp, this.file(record.key));
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const record = await this.read(key);
    if (!record) return undefined;
    const touched = { ...record, lastUsedMs: Date.now(), usageCount: record.usageCount + 1 };
    await this.write(touched);
    return touched;
  }

  async put(record: NewCacheRecord): Promise<CacheRecord> {
    const existing = await this.read(record.key);
    if (existing) return existing;
    const now = Date.now();
    const full: CacheRecord = { ...record, createdMs: now, lastUsedMs: now, usageCount: 0 };
    await this.write(full);
    return full;
  }

  async list(): Promise<CacheRecord[]> {
    let names: string[];
    try { names = await readdir(this.dir); } catch { return []; }
    const records = await Promise.all(names.filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(join(this.dir, n), 'utf8')) as CacheRecord));
    return records.sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  }

  async delete(keys: string[]): Promise<string[]> {
    const removed: CacheRecord[] = [];
    for (const key of keys) {
      const r = await this.read(key);
      if (r) { removed.push(r); await rm(this.file(key), { force: true }); }
    }
    const stillUsed = new Set((await this.list()).map((r) => r.layer?.digest));
    return [...new Set(removed.map((r) => r.layer?.digest).filter((d): d is string => !!d && !stillUsed.has(d)))];
  }
}
