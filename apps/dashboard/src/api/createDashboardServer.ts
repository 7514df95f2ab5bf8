import { once } from 'node:events';
import { existsSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import { readProgress } from '@buildyard/progress';
import { openRedis, type RedisKeys } from '@buildyard/contracts';
import { createMetrics, renderMetrics, type BuildyardMetrics } from '@buildyard/telemetry';
import { bearerToken, cookieSecret, roleForToken, type DashboardTokens, type Role } from './auth.js';
import { DashboardState, type DashboardLimits } from './DashboardState.js';
import { QueueSampler } from './QueueSampler.js';
import type { ProgressView, PruneRequest } from './types.js';
import type { StreamedProgressEvent } from '@buildyard/progress';

export interface DashboardServerOptions {
  redisUrl: string;
  /** `redisUrl` is a node of a Redis Cluster (`redis.cluster`). */
  redisCluster?: boolean;
  tokens: DashboardTokens;
  /** Built UI (index.html + assets); when missing, `/` explains how to build it. */
  uiDir?: string;
  /** The deployment's Redis keys (`redis.keyPrefix`); the default prefix when absent. */
  keys?: RedisKeys;
  /** Scheduler key prefix when it differs from `<keys.prefix>:sched` (tests use private ones). */
  prefix?: string;
  tenantLimit?: number | 'fleet';
  blobStore?: string;
  sampleIntervalMs?: number;
  metrics?: BuildyardMetrics;
  logger?: boolean;
  /** The process's logger (pino): what must not reach a caller (why Redis is unreachable) is logged there; requests are not. */
  log?: FastifyBaseLogger;
  /** What one request may read (DEFAULT_LIMITS when absent); tests set small ones. */
  limits?: Partial<DashboardLimits>;
}

export interface DashboardServer {
  app: FastifyInstance;
  state: DashboardState;
  sampler: QueueSampler;
  close(): Promise<void>;
}

const COOKIE = 'buildyard_dashboard';
/**
 * Live log tails open at once. Each holds a Redis connection of its own (a blocking XREAD): a
 * token holder opening thousands would use up the connections the whole cluster shares.
 */
export const MAX_LIVE_TAILS = 64;
/** Sent with every answer: the UI is same-origin scripts and styles only, and never framed. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * Whether a state-changing request comes from the dashboard's own pages (or a non-browser
 * client). SameSite=Strict keeps the cookie off other sites' requests, but not off those of
 * another origin of the same site (another port of this host, a sibling subdomain).
 */
function sameOrigin(req: FastifyRequest): boolean {
  // Browsers say where a request comes from; behind a proxy that rewrites Host, only this is right.
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    role: Role | null;
  }
}

function fail(reply: FastifyReply, code: number, error: string) {
  return reply.code(code).send({ error });
}

export function progressView(e: StreamedProgressEvent): ProgressView {
  const base: ProgressView = { id: e.streamId, type: e.type, timestampMs: e.timestampMs };
  switch (e.type) {
    case 'vertex.log': return { ...base, digest: e.digest, stream: e.stream, text: e.data.toString('utf8') };
    case 'vertex.started': case 'vertex.cached': case 'vertex.finished': case 'vertex.progress':
      return { ...base, digest: e.vertex.digest, name: e.vertex.name, platform: e.vertex.platform, stage: e.vertex.stage };
    case 'vertex.error':
      return { ...base, digest: e.vertex.digest, name: e.vertex.name, platform: e.vertex.platform, stage: e.vertex.stage, error: e.error };
    case 'build.error': return { ...base, error: e.message };
    case 'build.warning': return { ...base, text: e.message };
    case 'build.result': return { ...base, text: `pushed ${e.pushed.join(', ') || 'nothing'}; digest ${e.digest}` };
    default: return base;
  }
}

/** The dashboard's HTTP server: JSON API, SSE log tail, `/metrics`, `/healthz` and the UI. */
export async function createDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  if (!opts.tokens.readToken && !opts.tokens.adminToken) {
    throw new Error('dashboard: no token configured; set dashboard.readToken and dashboard.adminToken (BUILDYARD_DASHBOARD_READ_TOKEN / BUILDYARD_DASHBOARD_ADMIN_TOKEN)');
  }
  const redis = openRedis({ url: opts.redisUrl, cluster: opts.redisCluster }, { maxRetriesPerRequest: 3, lazyConnect: false });
  redis.on('error', () => undefined); // reported per request
  const state = new DashboardState(redis, {
    keys: opts.keys, prefix: opts.prefix, tenantLimit: opts.tenantLimit, blobStore: opts.blobStore, limits: opts.limits, fleetReadMs: opts.sampleIntervalMs,
  });
  const metrics = opts.metrics ?? createMetrics();
  const sampler = new QueueSampler(state, { intervalMs: opts.sampleIntervalMs, metrics });
  const app: FastifyInstance = opts.log
    ? Fastify({ loggerInstance: opts.log, logController: new LogController({ disableRequestLogging: true }) })
    : Fastify({ logger: opts.logger ?? false });
  const sse = new Set<AbortController>();

  await app.register(fastifyCookie, { secret: cookieSecret(opts.tokens) });
  app.decorateRequest('role', null);

  // The metrics token (a scraper's) reads /metrics and nothing else, and gets no session cookie.
  const metricsOnly = (reply: FastifyReply, req: FastifyRequest, path: string) => {
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) return undefined;
    return fail(reply, 403, `dashboard: the metrics token (dashboard.metricsToken) reads GET /metrics only; use the read or admin token for ${req.method} ${path}`);
  };

  app.addHook('onRequest', async (req, reply) => {
    void reply.headers(SECURITY_HEADERS);
    const path = req.url.split('?')[0];
    if (path === '/healthz') return;
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameOrigin(req)) {
      return fail(reply, 403, 'dashboard: a request from another origin cannot change anything; use the dashboard\'s own page or a client without an Origin header');
    }
    const query = req.query as Record<string, string | string[] | undefined>;
    const header = bearerToken(req.headers.authorization);
    if (header !== undefined) {
      req.role = roleForToken(header, opts.tokens);
      if (!req.role) return fail(reply, 401, 'dashboard: the bearer token is not valid; use the configured dashboard read or admin token');
      if (req.role === 'metrics') return metricsOnly(reply, req, path);
      return;
    }
    if (query.token !== undefined) {
      const role = typeof query.token === 'string' ? roleForToken(query.token, opts.tokens) : null;
      if (!role) return fail(reply, 401, 'dashboard: the ?token= value is not valid; use the configured dashboard read or admin token');
      if (role === 'metrics') {
        req.role = role;
        return metricsOnly(reply, req, path);
      }
      // The browser keeps the role in a signed HttpOnly cookie; the token itself is never stored.
      reply.setCookie(COOKIE, role, { httpOnly: true, sameSite: 'strict', path: '/', signed: true });
      req.role = role;
      if (req.method === 'GET' && !path.startsWith('/api/') && path !== '/metrics') {
        const rest = new URLSearchParams(query as Record<string, string>);
        rest.delete('token');
        const qs = rest.toString();
        // Keeps the token out of history. One leading slash: `//host/x` would send the browser to another site.
        return reply.redirect(`/${path.replace(/^\/+/, '')}${qs ? `?${qs}` : ''}`, 303);
      }
      return;
    }
    const raw = req.cookies[COOKIE];
    if (raw) {
      const un = req.unsignCookie(raw);
      if (un.valid && (un.value === 'read' || un.value === 'admin')) { req.role = un.value; return; }
    }
    if (!path.startsWith('/api/') && path !== '/metrics' && req.method === 'GET') {
      return reply.code(401).type('text/html').send('<!doctype html><title>Buildyard</title><p>Unauthorized: open this page with <code>?token=&lt;dashboard token&gt;</code> once.</p>');
    }
    return fail(reply, 401, 'dashboard: no token; send "Authorization: Bearer <token>" or open the page with ?token=<token>');
  });

  const admin = async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.role !== 'admin') return fail(reply, 403, 'dashboard: this operation needs the admin token (dashboard.adminToken)');
  };

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    void reply.code(code).send({ error: `dashboard: ${err.message.split('\n')[0]}` });
  });

  app.get('/healthz', async (req, reply) => {
    try {
      await state.ping();
      return { ok: true };
    } catch (err) {
      // Anyone may ask: Redis's own words (addresses, auth state) go to the log only.
      req.log.warn({ err: (err as Error).message }, 'dashboard: /healthz: Redis did not answer a ping');
      return reply.code(503).send({ ok: false, error: 'dashboard: Redis is unreachable; the dashboard\'s log says why' });
    }
  });

  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await renderMetrics(metrics.registry);
    return reply.type(contentType).send(body);
  });

  app.get('/api/me', async (req) => ({ role: req.role }));
  app.get('/api/queues', async () => {
    const [queues, platforms] = await Promise.all([sampler.queues(), state.platformQueues()]);
    return { queues, platforms, sampleIntervalMs: sampler.intervalMs };
  });
  app.get('/api/workers', async () => {
    // Measuring runs in the background; the answer carries each worker's last figure.
    void state.measureWorkerDisks().catch(() => undefined);
    return { workers: await state.listWorkers() };
  });
  app.get('/api/builds', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    return state.listBuilds({ status: q.status || undefined, tenant: q.tenant || undefined, platform: q.platform || undefined, limit: q.limit ? Number(q.limit) : undefined });
  });
  app.get('/api/builds/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const build = await state.getBuild(id);
    if (!build) return fail(reply, 404, `dashboard: build ${id} not found; it may have expired, check the build list`);
    return build;
  });

  // Live log tail: the build's progress stream from its start, as server-sent events.
  app.get('/api/builds/:id/progress', async (req, reply) => {
    const { id } = req.params as { id: string };
    // A tail of a build nobody knows would wait on Redis for ever.
    if (!(await state.getSummary(id)) && !(await state.scheduler.getBuild(id))) return fail(reply, 404, `dashboard: build ${id} not found; it may have expired, check the build list`);
    if (sse.size >= MAX_LIVE_TAILS) return fail(reply, 503, `dashboard: ${MAX_LIVE_TAILS} live logs are open already; close one (a build page in another tab) and retry`);
    const abort = new AbortController();
    sse.add(abort);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': connected\n\n');
    req.raw.on('close', () => abort.abort());
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    try {
      const after = req.headers['last-event-id'];
      for await (const e of readProgress(redis, id, { fromStart: true, after: typeof after === 'string' ? after : undefined, signal: abort.signal, blockMs: 2000, keys: state.keys })) {
        // A reader slower than the log is waited for, not buffered for: the next events stay in Redis.
        if (!res.write(`id: ${e.streamId}\ndata: ${JSON.stringify(progressView(e))}\n\n`)) await once(res, 'drain', { signal: abort.signal });
      }
      if (!abort.signal.aborted) res.write('event: end\ndata: {}\n\n');
    } catch (err) {
      if (!abort.signal.aborted) res.write(`event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
    } finally {
      clearInterval(ping);
      sse.delete(abort);
      res.end();
    }
  });

  app.get('/api/cache', async () => state.cacheView());

  app.post('/api/workers/:id/drain', { preHandler: admin }, async (req, reply) => {
    const { id } = req.params as { id: string };
    try {
      await state.drainWorker(id);
    } catch (err) {
      return fail(reply, 404, `dashboard: ${(err as Error).message}`);
    }
    return { ok: true, worker: id, draining: true };
  });

  // The operator's prune of every worker's disk, every tenant's state on it (a tenant's reaches only its own).
  app.post('/api/workers/prune', { preHandler: admin }, async (req, reply) => {
    const body = (req.body ?? {}) as { all?: unknown; keepBytes?: unknown };
    if (body.all === true) return state.pruneWorkers(0);
    if (typeof body.keepBytes === 'number' && body.keepBytes >= 0) return state.pruneWorkers(body.keepBytes);
    return fail(reply, 400, 'dashboard: a workers prune needs {"all": true} or {"keepBytes": N} (N >= 0)');
  });

  app.post('/api/builds/:id/cancel', { preHandler: admin }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const cancelled = await state.cancelBuild(id);
    if (!cancelled) return fail(reply, 409, `dashboard: build ${id} is not running (finished, unknown or already cancelled); nothing to cancel`);
    return { ok: true, buildId: id, cancelled };
  });

  app.post('/api/cache/:tenant/prune', { preHandler: admin }, async (req, reply) => {
    const { tenant } = req.params as { tenant: string };
    const body = (req.body ?? {}) as PruneRequest;
    const policy: PruneRequest = {};
    if (body.all === true) policy.all = true;
    for (const k of ['keepBytes', 'keepDurationMs'] as const) {
      if (body[k] === undefined) continue;
      if (typeof body[k] !== 'number' || !(body[k]! >= 0)) return fail(reply, 400, `dashboard: prune ${k} must be a number >= 0`);
      policy[k] = body[k];
    }
    if (!policy.all && policy.keepBytes === undefined && policy.keepDurationMs === undefined) {
      return fail(reply, 400, 'dashboard: prune needs a policy: {"all": true}, {"keepBytes": N} or {"keepDurationMs": N}');
    }
    if (!(await state.cacheTenants()).includes(tenant)) return fail(reply, 404, `dashboard: tenant ${tenant} has no cache entries`);
    return state.pruneCache(tenant, policy);
  });

  if (opts.uiDir && existsSync(opts.uiDir)) {
    await app.register(fastifyStatic, { root: opts.uiDir, prefix: '/', wildcard: false });
    // Client-side routes (/builds/abc) all load the single page.
    app.setNotFoundHandler((req, reply) => {
      if (req.method === 'GET' && !req.url.startsWith('/api/')) return reply.sendFile('index.html');
      return fail(reply, 404, `dashboard: no route ${req.method} ${req.url.split('?')[0]}`);
    });
  } else {
    app.get('/', async (_req, reply) => reply.type('text/html').send('<!doctype html><p>The dashboard UI is not built; run <code>npm run build -w @buildyard/dashboard</code>.</p>'));
  }

  sampler.start();
  return {
    app, state, sampler,
    close: async () => {
      for (const a of sse) a.abort();
      await sampler.stop();
      await app.close();
      await state.close();
      await redis.quit().catch(() => undefined);
    },
  };
}
