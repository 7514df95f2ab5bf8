// One HTTP(S) GET with the three limits a build's download needs: a connect timeout (TCP and
// TLS), an idle timeout (no byte for that long, while waiting for the headers or the body) and
// a whole-download deadline, and it ends at once when the build's signal aborts. fetch() has
// only an overall signal, so node:http is used directly. With `refuse`, every hop connects only
// to an address that the build's network policy allows: the name is resolved once, inside the
// connect (so the connect timeout covers it), and the socket opens to exactly the vetted
// address, so a DNS answer that changes between check and connect (rebinding) reaches nothing.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { AddressRefusedError, refusedLiteral, vettedLookup } from '@buildyard/oci';

export { AddressRefusedError, vettedLookup };

export interface HttpLimits {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** The whole exchange, redirects and body included. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** The network policy: why `address` (an IP) may not be connected to, or undefined to allow. */
  refuse?: (address: string) => string | undefined;
  /** Most bytes a downloaded body may have (downloadUrl stops at the first byte over it). */
  maxBytes?: number;
}

/** A limit was hit: says which, in words for the user. */
export class HttpTimeoutError extends Error {}

const MAX_REDIRECTS = 10;

/**
 * GETs `url`, following redirects, and answers the final response with its body unread. The
 * limits keep applying while the caller reads the body; call `done()` when finished with it.
 */
export async function httpGet(url: URL, limits: HttpLimits, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<{ res: IncomingMessage; url: URL; signal: AbortSignal; done(): void }> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new HttpTimeoutError(`timed out after ${limits.timeoutMs} ms`)), limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([limits.signal, deadline.signal]) : deadline.signal;
  const done = () => clearTimeout(timer);
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      const res = await requestOnce(current, limits, signal, headers, method);
      const location = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && location) {
        res.resume();
        if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
        current = new URL(location, current);
        if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new Error(`redirected to an unsupported scheme ${current.protocol}`);
        continue;
      }
      res.once('close', done);
      return { res, url: current, signal, done };
    }
  } catch (err) {
    done();
    if (err instanceof AddressRefusedError && current.href !== url.href) err.redirectedTo = current;
    throw signal.aborted ? signal.reason : err;
  }
}

function requestOnce(url: URL, limits: HttpLimits, signal: AbortSignal, headers: Record<string, string>, method: 'GET' | 'HEAD'): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? https.request : http.request;
    const refused = limits.refuse && refusedLiteral(url.hostname, limits.refuse);
    if (refused) { reject(refused); return; }
    const lookup = limits.refuse && vettedLookup(limits.refuse);
    // agent: false: a fresh connection, so the connect timeout always measures a real connect.
    // The Host header and TLS server name stay the URL's name; only the address is pinned.
    const req = request(url, { method, agent: false, signal, headers, ...(lookup ? { lookup } : {}) });
    req.end();
    let response: IncomingMessage | undefined;
    const connectTimer = setTimeout(() => req.destroy(new HttpTimeoutError(`could not connect to ${url.host} within ${limits.connectTimeoutMs} ms`)), limits.connectTimeoutMs);
    req.once('socket', (socket: Socket) => {
      const connected = () => {
        clearTimeout(connectTimer);
        // From here on, silence for idleTimeoutMs (before the headers or within the body) ends it.
        // Destroying the response (not the request) lets a reader of the body see this reason.
        socket.setTimeout(limits.idleTimeoutMs, () => (response ?? req).destroy(new HttpTimeoutError(`${url.host} sent nothing for ${limits.idleTimeoutMs} ms`)));
      };
      if (!socket.connecting) connected();
      else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
    });
    req.once('response', (res: IncomingMessage) => { response = res; resolve(res); });
    req.once('error', reject);
    req.once('close', () => clearTimeout(connectTimer));
  });
}
