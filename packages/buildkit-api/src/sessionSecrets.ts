import { posix } from 'node:path';
import { secrets } from '@buildyard/proto';
import { GrpcCallError } from './grpcOverHttp2.js';
import { runMountFields } from './runMountFields.js';
import type { ClientSession } from './SessionManager.js';
import { unaryCall } from './unaryCall.js';

const GET_SECRET = '/moby.buildkit.secrets.v1.Secrets/GetSecret';
const codec = { encode: (m: secrets.GetSecretRequest) => secrets.GetSecretRequest.encode(m).finish(), decode: (b: Uint8Array) => secrets.GetSecretResponse.decode(b) };
const NOT_FOUND = 5;

/**
 * The secret ids the Dockerfile's RUN --mount=type=secret flags name. The session can only be
 * asked for a secret by id, so the ids come from the Dockerfile, as BuildKit's frontend finds
 * them: `id`, else the base name of `target`/`dst`.
 */
export function secretIds(dockerfile: string, filename: string): string[] {
  const ids = new Set<string>();
  for (const fields of runMountFields(dockerfile, filename, 'secret')) {
    const target = fields.get('target') ?? fields.get('dst') ?? fields.get('destination');
    const id = fields.get('id') || (target ? posix.basename(target) : '');
    if (id) ids.add(id);
  }
  return [...ids];
}

/** BuildKit's secrets.MaxSecretSize. */
export const MAX_SECRET_BYTES = 500 * 1024;

/** Asks the client's session for each secret; one it does not have is left out (RUN reports it if required). */
export async function fetchSecrets(session: ClientSession, ids: string[], signal: AbortSignal): Promise<Array<{ id: string; value: Buffer }>> {
  if (ids.length === 0 || !session.supports(GET_SECRET)) return [];
  const found: Array<{ id: string; value: Buffer }> = [];
  for (const id of ids) {
    try {
      // GetSecret answers once, and a value over BuildKit's limit (secrets.MaxSecretSize, 500 KB)
      // is refused, as buildkitd refuses it.
      const answer = await unaryCall(session, GET_SECRET, {}, codec, secrets.GetSecretRequest.fromPartial({ ID: id }), signal);
      if (!answer) continue;
      if (answer.data.length > MAX_SECRET_BYTES) throw new Error(`the value is larger than ${MAX_SECRET_BYTES} bytes`);
      found.push({ id, value: Buffer.from(answer.data) });
    } catch (err) {
      if (!(err instanceof GrpcCallError && err.code === NOT_FOUND)) throw new Error(`reading secret "${id.slice(0, 64)}" from the client: ${(err as Error).message}`);
    }
  }
  return found;
}
