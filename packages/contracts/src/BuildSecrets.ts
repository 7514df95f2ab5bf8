import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { RedisClient as Redis } from './redisClient.js';
import { z } from 'zod';
import { jsonFromRedis } from './fromRedis.js';
import { DEFAULT_KEYS, type RedisKeys } from './keys.js';

export const buildSecretsPayloadSchema = z.object({
  /** Secret id -> value, base64. */
  secrets: z.record(z.string(), z.string()),
  registryAuth: z.array(z.object({ registry: z.string(), username: z.string(), password: z.string(), identityToken: z.string() })),
});

/** What a build carries that must never be stored in the clear: RUN secrets and registry logins. */
export type BuildSecretsPayload = z.infer<typeof buildSecretsPayloadSchema>;

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Parses the shared key; an empty string means none (builds with secrets are then refused). */
export function secretsKey(hexKey: string): Buffer | undefined {
  const key = hexKey ? Buffer.from(hexKey, 'hex') : undefined;
  if (key && key.length !== 32) throw new Error('the secrets key must be 64 hex characters (32 bytes): generate one with `openssl rand -hex 32`');
  return key;
}

/** AES-256-GCM with the build id as associated data, so a sealed value only opens for its build. */
export function sealSecrets(key: Buffer, buildId: string, payload: BuildSecretsPayload): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(buildId));
  return Buffer.concat([iv, cipher.update(JSON.stringify(payload)), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

export function unsealSecrets(key: Buffer, buildId: string, sealedBase64: string): BuildSecretsPayload {
  const sealed = Buffer.from(sealedBase64, 'base64');
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error(`the sealed secrets of build ${buildId} are truncated: run the build again`);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(buildId));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  let plain: string;
  try {
    plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new Error(`cannot open the secrets of build ${buildId}: this process's BUILDYARD_SECRETS_KEY differs from the frontend's; give every process the same key`);
  }
  return jsonFromRedis(buildSecretsPayloadSchema, plain, `the secrets of build ${buildId}`);
}

/**
 * Hands a build's secrets from the frontend to the workers: sealed with AES-256-GCM under a key
 * only the frontend and workers hold, kept in Redis only while the build runs (with a TTL as a
 * backstop), never written to job data, logs, progress or the cache.
 */
export class BuildSecrets {
  private readonly key: Buffer | undefined;

  /** Without a key (empty string) builds work, but those carrying secrets or logins are refused. */
  constructor(private readonly redis: Redis, hexKey: string, private readonly keys: RedisKeys = DEFAULT_KEYS) {
    this.key = secretsKey(hexKey);
  }

  async put(buildId: string, payload: BuildSecretsPayload, ttlMs: number): Promise<void> {
    if (Object.keys(payload.secrets).length === 0 && payload.registryAuth.length === 0) return;
    if (!this.key) throw new Error('this builder has no secrets key (BUILDYARD_SECRETS_KEY), so it cannot pass secrets or registry logins to its workers');
    await this.redis.set(this.keys.buildSecrets(buildId), sealSecrets(this.key, buildId, payload), 'PX', ttlMs);
  }

  async get(buildId: string): Promise<BuildSecretsPayload> {
    const raw = await this.redis.get(this.keys.buildSecrets(buildId));
    if (!raw) return { secrets: {}, registryAuth: [] };
    if (!this.key) throw new Error('this worker has no secrets key (BUILDYARD_SECRETS_KEY) but the build carries secrets: give it the frontend\'s key');
    return unsealSecrets(this.key, buildId, raw);
  }

  async delete(buildId: string): Promise<void> {
    await this.redis.del(this.keys.buildSecrets(buildId));
  }
}
