import { Duplex } from 'node:stream';
import { DEFAULT_SSH_ID } from '@buildyard/contracts';
import type { SshAgentSource } from '@buildyard/control';
import { sshforward } from '@buildyard/proto';
import { GrpcCallError } from './grpcOverHttp2.js';
import { runMountFields } from './runMountFields.js';
import type { ClientSession } from './SessionManager.js';
import { unaryCall } from './unaryCall.js';

const CHECK_AGENT = '/moby.sshforward.v1.SSH/CheckAgent';
const FORWARD_AGENT = '/moby.sshforward.v1.SSH/ForwardAgent';
/** The metadata naming a ForwardAgent call's agent (BuildKit's sshforward.KeySSHID). */
const SSH_ID_HEADER = 'buildkit.ssh.id';
const checkCodec = { encode: (m: sshforward.CheckAgentRequest) => sshforward.CheckAgentRequest.encode(m).finish(), decode: (b: Uint8Array) => sshforward.CheckAgentResponse.decode(b) };
const bytesCodec = { encode: (m: sshforward.BytesMessage) => sshforward.BytesMessage.encode(m).finish(), decode: (b: Uint8Array) => sshforward.BytesMessage.decode(b) };

/** The agent ids the Dockerfile's RUN --mount=type=ssh flags name (`default` for none). */
export function sshIds(dockerfile: string, filename: string): string[] {
  return [...new Set(runMountFields(dockerfile, filename, 'ssh').map((fields) => fields.get('id') || DEFAULT_SSH_ID))];
}

/**
 * One ForwardAgent stream as a byte stream: the agent protocol's bytes in BytesMessages both ways.
 * The client's messages are taken only as the relay reads them: while it does not (the step is
 * not reading its answers), the call's HTTP/2 stream stops taking them, which holds back this
 * one agent connection at the client and no other.
 */
function forwardAgent(session: ClientSession, id: string): Duplex {
  const call = session.call(FORWARD_AGENT, { [SSH_ID_HEADER]: id }, bytesCodec);
  const messages = call.messages();
  let pulling = false;
  const pull = async () => {
    pulling = true;
    try {
      for (;;) {
        const next = await messages.next();
        if (next.done) { duplex.push(null); return; }
        if (!duplex.push(Buffer.from(next.value.data))) return;
      }
    } catch (err) {
      duplex.destroy(err as Error);
    } finally {
      pulling = false;
    }
  };
  const duplex: Duplex = new Duplex({
    read() { if (!pulling) void pull(); },
    write(chunk: Buffer, _enc, done) { call.send(sshforward.BytesMessage.fromPartial({ data: chunk })).then(() => done(), done); },
    // BuildKit's client half-closes its agent connection when our side ends (sshforward.Copy).
    final(done) { call.end(); done(); },
    destroy(err, done) { call.cancel(); done(err); },
  });
  return duplex;
}

/**
 * The client's agents for the ids the Dockerfile uses, as BuildKit checks them (CheckAgent per
 * id): undefined when the Dockerfile mounts none or the session serves no SSH (RUN then reports
 * "no SSH key ... forwarded"), else the ids the client answered for, possibly none.
 */
export async function sessionSshAgents(session: ClientSession, ids: string[], signal: AbortSignal): Promise<SshAgentSource | undefined> {
  if (ids.length === 0 || !session.supports(FORWARD_AGENT)) return undefined;
  const forwarded: string[] = [];
  for (const id of ids) {
    try {
      await unaryCall(session, CHECK_AGENT, {}, checkCodec, sshforward.CheckAgentRequest.fromPartial({ ID: id }), signal);
      forwarded.push(id);
    } catch (err) {
      // "unset ssh forward key": the client does not forward this id; RUN reports it if required.
      if (!(err instanceof GrpcCallError)) throw new Error(`checking SSH agent "${id.slice(0, 64)}" with the client: ${(err as Error).message}`);
    }
  }
  return { ids: forwarded, dial: async (id) => forwardAgent(session, id) };
}
