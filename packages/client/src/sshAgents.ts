// `buildyard build --ssh`: the client's side of SSH agent forwarding, as buildx's (BuildKit's
// sshprovider): each id is either an agent socket or private key files loaded into an agent in
// this process. Steps reach it only through the build's frontend (sshSession.ts), and only to
// list keys and sign: adding, removing, locking and extensions are refused, as BuildKit's
// read-only agent refuses them. Private keys never leave this process.
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import type { ParsedKey } from 'ssh2';
import { usageError } from './ClientError.js';

/** One `--ssh` value: an agent id and the socket or key files behind it. */
export interface SshSpec {
  id: string;
  paths: string[];
}

/** BuildKit's id of `--ssh default` and of a mount without `id=` (sshforward.DefaultID). */
const DEFAULT_ID = 'default';
/** BuildKit reads at most this much of a key file. */
const MAX_KEY_BYTES = 100 * 1024;

const quoted = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

/**
 * `--ssh default|<id>[=<socket>|<key>[,<key>]]`, as buildx parses it: without paths the agent
 * is $SSH_AUTH_SOCK. Relative paths are resolved against `cwd`.
 */
export function parseSshSpec(value: string, env: NodeJS.ProcessEnv, cwd: string): SshSpec {
  const eq = value.indexOf('=');
  const id = (eq < 0 ? value : value.slice(0, eq)).trim();
  if (!id) throw usageError(`--ssh ${quoted(value)}: missing id; write default, default=PATH or ID=PATH[,PATH]`);
  const paths = (eq < 0 ? [] : value.slice(eq + 1).split(',')).map((p) => p.trim()).filter(Boolean).map((p) => resolve(cwd, p));
  if (paths.length === 0) {
    if (!env.SSH_AUTH_SOCK) throw usageError(`--ssh ${id}: SSH_AUTH_SOCK is not set; start an agent (eval "$(ssh-agent)" && ssh-add) or name a socket or key file: --ssh ${id}=PATH`);
    paths.push(env.SSH_AUTH_SOCK);
  }
  return { id, paths };
}

/** Checks the ids are distinct (buildx: "duplicate agent ID"). */
export function checkSshSpecs(specs: SshSpec[]): SshSpec[] {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.id)) throw usageError(`--ssh ${s.id}: given twice; give each agent id once`);
    seen.add(s.id);
  }
  return specs;
}

/** What a forwarded agent can do: list its keys and sign with one. */
interface Keyring {
  list(): Promise<ParsedKey[]>;
  /** The signature blob (without its format name), or an error. */
  sign(key: ParsedKey, data: Buffer, hash: 'sha1' | 'sha256' | 'sha512' | undefined): Promise<Buffer>;
}

// ssh2 is CommonJS and only needed with --ssh: loaded then.
type Ssh2 = typeof import('ssh2');

/** An agent socket: every request opens a connection to it (OpenSSH's agent client does the protocol). */
function socketKeyring(ssh2: Ssh2, path: string): Keyring {
  const agent = new ssh2.OpenSSHAgent(path);
  return {
    list: () => new Promise((res, rej) => agent.getIdentities((err, keys) => (err ? rej(err) : res((keys ?? []).filter((k): k is ParsedKey => 'getPublicSSH' in k))))),
    sign: (key, data, hash) => new Promise((res, rej) => agent.sign(key, data, { hash }, (err, sig) => (err || !sig ? rej(err ?? new Error('no signature')) : res(sig)))),
  };
}

/** An ECDSA signature as SSH writes it (two mpints) from the DER node's crypto gives. */
function sshEcdsaSignature(der: Buffer): Buffer {
  // SEQUENCE { INTEGER r, INTEGER s }, lengths below 128 bytes for every SSH curve.
  let at = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  const ints: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    const len = der[at + 1];
    ints.push(der.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return Buffer.concat(ints.flatMap((n) => { const head = Buffer.alloc(4); head.writeUInt32BE(n.length); return [head, n]; }));
}

/** Private keys loaded here (buildx loads key files into an in-process agent). */
function keyFileKeyring(keys: ParsedKey[]): Keyring {
  return {
    list: async () => keys,
    sign: async (pub, data, hash) => {
      const key = keys.find((k) => k.getPublicSSH().equals(pub.getPublicSSH()));
      if (!key) throw new Error('no such key');
      const sig = key.sign(data, hash);
      if (sig instanceof Error) throw sig;
      return key.type.startsWith('ecdsa-') ? sshEcdsaSignature(sig) : sig;
    },
  };
}

async function loadKeyring(ssh2: Ssh2, spec: SshSpec): Promise<Keyring> {
  const keys: ParsedKey[] = [];
  let socket: string | undefined;
  for (const path of spec.paths) {
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => { throw usageError(`--ssh ${spec.id}: cannot read ${quoted(path)} (${err.code ?? err.message}); name an agent socket or a private key file`); });
    if (st.isSocket()) {
      if (socket) throw usageError(`--ssh ${spec.id}: only one agent socket per id`);
      socket = path;
      continue;
    }
    const text = (await readFile(path)).subarray(0, MAX_KEY_BYTES);
    const parsed = ssh2.utils.parseKey(text);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (key instanceof Error || !key) {
      const why = key instanceof Error && /encrypted|passphrase/i.test(key.message) ? 'it is encrypted: add it to an agent with ssh-add and pass the agent' : 'not a private key buildyard can read';
      throw usageError(`--ssh ${spec.id}: ${quoted(path)}: ${why}`);
    }
    if (!key.isPrivateKey()) throw usageError(`--ssh ${spec.id}: ${quoted(path)} is a public key; name the private key file or an agent socket`);
    keys.push(key);
  }
  if (socket && keys.length > 0) throw usageError(`--ssh ${spec.id}: an agent socket and key files cannot be mixed in one id; give them separate ids`);
  return socket ? socketKeyring(ssh2, socket) : keyFileKeyring(keys);
}

/** The client's forwarded agents by id. */
export interface LocalSshAgents {
  ids: string[];
  /** One agent connection for a step: a byte stream of the agent protocol. */
  dial(id: string): Duplex;
}

/** Checks every socket and key file before anything is uploaded (bad ones exit 2). */
export async function loadSshAgents(specs: SshSpec[]): Promise<LocalSshAgents> {
  const ssh2 = (await import('ssh2')).default;
  const keyrings = new Map<string, Keyring>();
  for (const spec of checkSshSpecs(specs)) keyrings.set(spec.id || DEFAULT_ID, await loadKeyring(ssh2, spec));
  return {
    ids: [...keyrings.keys()],
    dial(id) {
      const keyring = keyrings.get(id);
      if (!keyring) throw new Error(`unset ssh forward key ${id}`);
      // Server mode answers what the step asks; anything but listing and signing gets a failure.
      const agent = new ssh2.AgentProtocol(false);
      agent.on('identities', (req) => {
        keyring.list().then((keys) => agent.getIdentitiesReply(req, keys), () => agent.failureReply(req));
      });
      agent.on('sign', (req, key: ParsedKey, data: Buffer, options: { hash?: 'sha1' | 'sha256' | 'sha512' }) => {
        keyring.sign(key, data, options.hash).then((sig) => agent.signReply(req, sig), () => agent.failureReply(req));
      });
      return agent;
    },
  };
}
