// The build's --add-host entries: extra /etc/hosts lines of every RUN step (BuildKit's
// dockerui ExtraHosts), planned into each RUN so they are part of its cache key.
import { isIP } from 'node:net';

/** --add-host entries, `name:ip` (docker build) or `name=ip` (BuildKit's add-hosts attribute);
 *  throws a one-line Error naming a bad one. */
export function parseAddHosts(entries: readonly string[]): { host: string; ip: string }[] {
  return entries.map((entry) => {
    const sep = /[:=]/.exec(entry)?.index ?? -1;
    const host = entry.slice(0, sep);
    const ip = entry.slice(sep + 1);
    if (sep <= 0 || !/^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$/.test(host) || isIP(ip) === 0) {
      throw new Error(`invalid --add-host ${JSON.stringify(entry.slice(0, 100))}: use name:ip, e.g. cache.internal:10.0.0.5`);
    }
    return { host, ip };
  });
}
