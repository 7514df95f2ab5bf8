import { readFile } from 'node:fs/promises';
import type { Secret } from '@buildyard/proto';
import { usageError } from './ClientError.js';
import type { SecretSource } from './parseBuildFlags.js';

/** Reads each secret's value on the client (the server only ever holds it in memory). */
export async function readSecrets(sources: readonly SecretSource[], env: NodeJS.ProcessEnv = process.env): Promise<Secret[]> {
  const out: Secret[] = [];
  for (const s of sources) {
    if (s.env !== undefined) {
      const v = env[s.env];
      if (v === undefined) throw usageError(`--secret id=${s.id}: environment variable ${s.env} is not set; export it or use src=FILE`);
      out.push({ id: s.id, value: Buffer.from(v) });
    } else if (s.src !== undefined) {
      try {
        out.push({ id: s.id, value: await readFile(s.src) });
      } catch (err) {
        throw usageError(`--secret id=${s.id}: cannot read ${s.src} (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the src= path`);
      }
    }
  }
  return out;
}
