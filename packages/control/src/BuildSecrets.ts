import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** What a build carries that must never be stored in the clear: RUN secrets and registry logins. */
export interface BuildSecretsPayload {
  secrets: Record<string, string /* base64 */>;
  registryAuth: Array<{ registry: string; username: string; password: string; identityToken: string }>;
}

const key = (buildId: string) => `buildyard:build-secrets:${buildId}`;

/**
 * Hands a build's secrets from the frontend to the workers: sealed with AES-256-GCM under a key
 * only the frontend and workers hold, kept in Redis only while the build runs (with a TTL as a
 * backstop), never written to job data, logs, progress or the cache.
 */
export class BuildSecrets {
  private readonly key: Buffer | undefined;

  /** Without a key (empty string) builds work, but those carrying secrets or logins are refused. */
  constructor(private readonly redis: Redis, hexKey: string) {
    this.key = hexKey ? Buffer.from(hexKey, 'hex') : undefined;
    if (this.key && this.key.length !== 32) throw new Error('the secrets key must be 64 hex characters (32 bytes): generate one with `openssl rand -hex 32`');
  }

  async put(buildId: string, payload: BuildSecretsPayload, ttlMs: number): Promise<void> {
    if (Object.keys(payload.secrets).length === 0 && payload.registryAuth.length === 0) return;
    if (!this.key) throw new Error('this builder has no secrets key (BUILDYARD_SECRETS_KEY), so it cannot pass secrets or registry logins to its workers');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(buildId));
    const sealed = Buffer.concat([iv, cipher.update(JSON.stringify(payload)), cipher.final(), cipher.getAuthTag()]);
    await this.redis.set(key(buildId), sealed.toString('base64'), 'PX', ttlMs);
  }

  async get(buildId: string): Promise<BuildSecretsPayload> {
    const raw = await this.redis.get(key(buildId));
    if (!raw) return { secrets: {}, registryAuth: [] };
    if (!this.key) throw new Error('this worker has no secrets key (BUILDYARD_SECRETS_KEY) but the build carries secrets: give it the frontend\'s key');
    const sealed = Buffer.from(raw, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(buildId));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return JSON.parse(Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]).toString('utf8'));
  }

  async delete(buildId: string): Promise<void> {
    await this.redis.del(key(buildId));
  }
}
