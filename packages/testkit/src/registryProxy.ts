// A node:http front for a real registry, for tests of registry clients: it can demand Bearer
// tokens issued by its own /token endpoint (the distribution token flow), demand Basic auth,
// inject 5xx responses, or corrupt blob bodies. Everything else is forwarded unchanged.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface ProxyOptions {
  upstream: string; // 127.0.0.1:PORT of the real registry
  mode: 'bearer' | 'basic' | 'plain';
  users?: Record<string, string>; // username -> password
  refreshTokens?: string[]; // identity tokens accepted for grant_type=refresh_token
  /** Respond 503 (or `status` with distribution's error `code`) to the next N matching requests. */
  failNext?: { count: number; match?: (method: string, path: string) => boolean; status?: number; code?: string };
  corruptBlobs?: boolean;
}

export interface RegistryProxy {
  host: string;
  tokenRequests: { account?: string; scopes: string[]; via: 'get' | 'refresh' }[];
  requests: { method: string; path: string; status: number }[];
  options: ProxyOptions;
  stop(): Promise<void>;
}

interface Grant { scopes: Map<string, Set<string>>; }

function parseScope(scope: string): { repo: string; actions: string[] } | undefined {
  const m = /^repository:(.+):([a-z,*]+)$/.exec(scope);
  return m ? { repo: m[1], actions: m[2].split(',') } : undefined;
}

export async function startRegistryProxy(options: ProxyOptions): Promise<RegistryProxy> {
  const tokens = new Map<string, Grant>();
  const proxy: RegistryProxy = { host: '', tokenRequests: [], requests: [], options, stop: async () => {} };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    const record = (status: number) => proxy.requests.push({ method: req.method ?? '', path: url.pathname + url.search, status });

    if (url.pathname === '/token') {
      void handleToken(req, url).then(({ status, body }) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
      return;
    }

    const m = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(url.pathname);
    const repo = m?.[1];
    const needs = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
    const required: { repo: string; action: string }[] = repo ? [{ repo, action: needs }] : [];
    const from = url.searchParams.get('from');
    if (from) required.push({ repo: from, action: 'pull' });

    if (options.mode === 'bearer') {
      const auth = req.headers.authorization ?? '';
      const grant = auth.startsWith('Bearer ') ? tokens.get(auth.slice(7)) : undefined;
      const ok = grant && required.every((r) => grant.scopes.get(r.repo)?.has(r.action));
      if (!ok) {
        const scope = required.map((r) => `repository:${r.repo}:${r.action === 'push' ? 'pull,push' : 'pull'}`).join(' ');
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${proxy.host}/token",service="test-registry"${scope ? `,scope="${scope}"` : ''}`,
          'content-type': 'application/json',
        }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        req.resume();
        record(401);
        return;
      }
    } else if (options.mode === 'basic') {
      const auth = req.headers.authorization ?? '';
      const [user, pass] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':') : [];
      if (!user || options.users?.[user] !== pass) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
        req.resume();
        record(401);
        return;
      }
    }

    const fail = options.failNext;
    if (fail && fail.count > 0 && (!fail.match || fail.match(req.method ?? '', url.pathname))) {
      fail.count--;
      req.resume();
      const status = fail.status ?? 503;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: fail.code ?? 'UNAVAILABLE', message: 'injected failure' }] }));
      record(status);
      return;
    }

    const headers = { ...req.headers };
    delete headers.authorization;
    const [upHost, upPort] = options.upstream.split(':');
    const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers }, (upRes) => {
      record(upRes.statusCode ?? 0);
      const corrupt = options.corruptBlobs && req.method === 'GET' && m?.[2] === 'blobs';
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (corrupt) {
        let first = true;
        upRes.on('data', (c: Buffer) => {
          if (first) { c = Buffer.from(c); c[0] ^= 0xff; first = false; }
          res.write(c);
        });
        upRes.on('end', () => res.end());
      } else {
        upRes.pipe(res);
      }
    });
    up.on('error', (err) => { res.writeHead(502).end(String(err)); });
    req.pipe(up);
  });

  async function handleToken(req: http.IncomingMessage, url: URL): Promise<{ status: number; body: unknown }> {
    let scopes = url.searchParams.getAll('scope');
    let account: string | undefined;
    let authenticated = false;
    let via: 'get' | 'refresh' = 'get';
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      via = 'refresh';
      if (form.get('grant_type') !== 'refresh_token' || !options.refreshTokens?.includes(form.get('refresh_token') ?? '')) {
        return { status: 401, body: { error: 'invalid refresh token' } };
      }
      authenticated = true;
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else {
      const auth = req.headers.authorization;
      if (auth?.startsWith('Basic ')) {
        const [user, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
        if (options.users?.[user] !== pass) return { status: 401, body: { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] } };
        account = user;
        authenticated = true;
      }
    }
    proxy.tokenRequests.push({ account, scopes, via });
    const grant: Grant = { scopes: new Map() };
    for (const s of scopes.flatMap((x) => x.split(' '))) {
      const p = parseScope(s);
      if (!p) continue;
      // Anonymous users may only pull; authenticated ones get what they ask for.
      const allowed = p.actions.filter((a) => authenticated || a === 'pull');
      grant.scopes.set(p.repo, new Set([...(grant.scopes.get(p.repo) ?? []), ...allowed]));
    }
    const token = randomBytes(16).toString('hex');
    tokens.set(token, grant);
    return { status: 200, body: { token, expires_in: 300 } };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
