import type { Codec } from './grpcOverHttp2.js';
import type { ClientSession } from './SessionManager.js';

/**
 * Calls a unary method of the client's session: one request, the first answer, and the call is
 * then cancelled. Undefined when the call ends OK without an answer; a non-OK status throws its
 * GrpcCallError. A unary answer is one message: a client that streams on (answers without end
 * to GetSecret, Credentials or CheckAgent) is not read on, so it can neither pile its answers up
 * in the frontend nor hold the build that asked.
 */
export async function unaryCall<Req, Res>(session: Pick<ClientSession, 'call'>, method: string, metadata: Record<string, string | string[]>, codec: Codec<Req, Res>, request: Req, signal: AbortSignal): Promise<Res | undefined> {
  const call = session.call(method, metadata, codec);
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await call.send(request);
    call.end();
    for await (const answer of call.messages()) return answer;
    return undefined;
  } finally {
    signal.removeEventListener('abort', onAbort);
    call.cancel();
  }
}
