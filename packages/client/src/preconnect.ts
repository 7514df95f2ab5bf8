// `buildyard build` knows its builder long before its first call: the context walk, the Dockerfile
// and most of the client's code come first. preconnect() opens the channel at the start, so the
// connection (TCP, TLS, HTTP/2 settings) is ready by the first call instead of starting there, as
// buildctl dials before it reads its inputs. It is speculative: connectBuilder() takes the
// channel only for a builder with the same address and TLS files, and whatever is left unused is
// closed by releasePreconnected().
import { BuilderStore } from './BuilderStore.js';
import { channelKey, openChannel, type BuilderChannel } from './builderChannel.js';

let pending: { key: string; open: BuilderChannel } | undefined;

/**
 * Starts connecting to the builder `buildyard build --builder <builder>` would use (undefined:
 * BUILDYARD_BUILDER or the current one). Never fails: a builder that does not resolve is left to
 * the build to report, in its own order of checks.
 */
export async function preconnect(builder: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    const resolved = await new BuilderStore(undefined).resolve(builder, env);
    releasePreconnected();
    pending = { key: channelKey(resolved), open: openChannel(resolved, true) };
  } catch {
    // The build resolves the builder again and says what is wrong.
  }
}

/** The preconnected channel if it leads where `key` says (it is then the caller's to close). */
export function takePreconnected(key: string): BuilderChannel | undefined {
  if (pending?.key !== key) return undefined;
  const { open } = pending;
  pending = undefined;
  return open;
}

/** Closes a preconnected channel nobody took (a usage error, --call, another builder). */
export function releasePreconnected(): void {
  pending?.open.channel.close();
  pending = undefined;
}
