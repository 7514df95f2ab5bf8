import { createHash, type Hash } from 'node:crypto';

/** A content digest, always `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** Throws a one-line error when `s` is not a `sha256:<hex>` digest. */
export function assertDigest(s: string, where = 'digest'): Digest {
  if (!isDigest(s)) throw new Error(`invalid ${where} "${s}": expected sha256:<64 hex chars>`);
  return s;
}

export function sha256Digest(data: Buffer | Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestHex(d: string): string {
  return assertDigest(d).slice('sha256:'.length);
}

/** Incremental digester used by streaming verifiers. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
