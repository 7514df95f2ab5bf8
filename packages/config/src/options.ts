import { z } from 'zod';

/**
 * Every option of every Buildyard process, in one table: its dotted path in the TOML file,
 * its environment variable, its schema, its default and what it is for. The typed config,
 * the loader and the generated configuration reference all come from this table.
 */
export interface OptionSpec<T = unknown> {
  path: string;
  env: string;
  schema: z.ZodType<T>;
  default: T;
  doc: string;
}

const opt = <T>(path: string, env: string, schema: z.ZodType<T>, def: T, doc: string): OptionSpec<T> => ({ path, env, schema, default: def, doc });

const bytes = z.coerce.number().int().nonnegative();
const ms = z.coerce.number().int().positive();
const list = z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(z.string()));
const bool = z.preprocess((v) => (typeof v === 'string' ? ['1', 'true', 'yes', 'on'].includes(v.toLowerCase()) : v), z.boolean());
const loopbackOrAny = z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port');

export const OPTIONS = [
  opt('redis.url', 'BUILDYARD_REDIS_URL', z.string().regex(/^rediss?:\/\//, 'expected redis://host:port'), 'redis://127.0.0.1:6379', 'Redis holding queues, build records, worker heartbeats and the cache index.'),
  opt('redis.cluster', 'BUILDYARD_REDIS_CLUSTER', bool, false, 'Redis is a Redis Cluster: `redis.url` names one or more of its nodes, separated by commas (`redis://:PASSWORD@10.0.0.1:6379,10.0.0.2:6379`; the others are found from them, and a process starting while one is down connects through another; database 0 only). Set it alike on the frontends, the workers and the dashboard. Keys changed together share a hash tag: the scheduler\'s and BullMQ\'s (`{<keyPrefix>:sched}`), the build records (`{<keyPrefix>:builds}`), the cache index and the blob leases. Builds are denied the named nodes: list the others in `worker.egress.deny`.'),
  opt('redis.keyPrefix', 'BUILDYARD_REDIS_KEY_PREFIX', z.string().regex(/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$/, "expected letters, digits, '.', '_', '-' with ':' between parts"), 'buildyard', 'Prefix of every Redis key (queues, records, cache index, progress); the same on every process. Lets deployments share one Redis.'),
  opt('stateDir', 'BUILDYARD_STATE_DIR', z.string().min(1), '/var/lib/buildyard', 'Directory for this process\'s local state (snapshots, blobs, contexts).'),
  opt('sharedDir', 'BUILDYARD_SHARED_DIR', z.string(), '', 'Directory for build contexts (`contexts/`) and, with blobStore.type=fs, the blob store (`blobs/`). With fs every frontend and worker must see the same directory (one machine, or one volume mounted everywhere); with registry it need not be shared: contexts move through the registry and Redis, and it holds the copies of this process (or of this machine\'s processes, if they share it), so machines need no common disk. Empty means `<stateDir>/shared`.'),
  opt('blobStore.type', 'BUILDYARD_BLOB_STORE', z.enum(['fs', 'registry']), 'fs', 'Where layer blobs and build contexts are shared between frontends and workers: a directory (single machine) or a registry repository (fleet, no common disk).'),
  opt('blobStore.repository', 'BUILDYARD_BLOB_REPOSITORY', z.string(), '', 'Registry repository for the shared blob store, e.g. registry.example.com/buildyard/cache.'),
  opt('registry.insecure', 'BUILDYARD_INSECURE_REGISTRIES', list, [], 'Registries reached over plain http besides loopback ones (comma list of host:port). Builds may use them wherever they are (as registry.trusted).'),
  opt('registry.trusted', 'BUILDYARD_TRUSTED_REGISTRIES', list, [], 'Registries builds may pull from and push to although worker.egress refuses their address, such as the cluster\'s own registry on a loopback or host address (comma list of host:port, as image references name them). Only their own host:port is exempt: a redirect or token realm elsewhere obeys the egress rules. Any other registry a build names (FROM, COPY --from, --cache-from/--cache-to, pushes) is reached under the egress rules of ADD <url>, redirects and token realms included. RUN steps may not reach these.'),
  opt('registry.tenantScoped', 'BUILDYARD_TENANT_SCOPED_REGISTRIES', list.pipe(z.array(z.string().regex(/^[^\s/]+$/, 'expected host[:port] entries'))), [], 'Registries shared by tenants that give each tenant its own namespace (comma list of host:port, as image references name them): there a build may only name repositories under `<tenant>/` (base images, COPY --from and RUN --mount from=, docker-image:// contexts, pushed names, --cache-from/--cache-to refs; both front doors), so no tenant reads, overwrites or poisons another\'s images and caches on a registry without accounts, such as the cluster\'s own. A tenant whose name is not a repository path component (lowercase letters and digits with . _ - between them) has no repositories there. The check goes by the name a reference gives: list every name builds can reach the registry by (its address, a DNS alias; on a private or loopback address the egress rules let builds reach only the names in registry.trusted and registry.insecure). The blob store\'s repository (blobStore.type=registry) is refused to every build on any registry.'),
  opt('registry.sharedReadOnly', 'BUILDYARD_SHARED_READONLY_REPOSITORIES', list.pipe(z.array(z.string().regex(/^[^\s/]+\/\S+$/, 'expected host[:port]/prefix entries'))), [], 'Repository prefixes on registry.tenantScoped registries every tenant\'s build may pull from (FROM, COPY --from, --cache-from) but none may push to (comma list of host:port/prefix, e.g. registry.example:5000/library for base images the operator seeds there).'),
  opt('frontend.listen', 'BUILDYARD_LISTEN', loopbackOrAny, '127.0.0.1:8372', 'Address of the gRPC frontend.'),
  opt('frontend.healthListen', 'BUILDYARD_HEALTH_LISTEN', z.string(), '', 'Address of the HTTP health and /metrics endpoint; empty disables it.'),
  opt('frontend.tlsCert', 'BUILDYARD_TLS_CERT', z.string(), '', 'PEM certificate for TLS on the gRPC port; empty serves plaintext.'),
  opt('frontend.tlsKey', 'BUILDYARD_TLS_KEY', z.string(), '', 'PEM private key for TLS.'),
  opt('frontend.tlsClientCa', 'BUILDYARD_TLS_CLIENT_CA', z.string(), '', 'PEM CA bundle; when set, clients must present a certificate it signed (mTLS).'),
  opt('buildkit.listen', 'BUILDYARD_BUILDKIT_LISTEN', z.string().regex(/^([^\s:]+:\d+)?$/, 'expected host:port'), '', 'Address of the BuildKit-compatible endpoint (buildctl, docker buildx --driver remote); empty disables it.'),
  opt('buildkit.insecure', 'BUILDYARD_BUILDKIT_INSECURE', bool, false, 'Serve the BuildKit endpoint in plain text, without client certificates; refused unless buildkit.listen is a loopback address.'),
  opt('buildkit.tenant', 'BUILDYARD_BUILDKIT_TENANT', z.string(), '', 'Tenant that builds through the plain-text BuildKit endpoint run as (it has no other way to tell clients apart).'),
  opt('buildkit.tlsCert', 'BUILDYARD_BUILDKIT_TLS_CERT', z.string(), '', 'PEM server certificate of the BuildKit endpoint (with tlsKey and tlsClientCa: TLS with client certificates, as buildkitd).'),
  opt('buildkit.tlsKey', 'BUILDYARD_BUILDKIT_TLS_KEY', z.string(), '', 'PEM private key of the BuildKit endpoint.'),
  opt('buildkit.tlsClientCa', 'BUILDYARD_BUILDKIT_TLS_CLIENT_CA', z.string(), '', 'PEM CA that signs BuildKit clients\' certificates; a certificate\'s subject CN names its tenant.'),
  opt('auth.tokensFile', 'BUILDYARD_TOKENS_FILE', z.string(), '', 'File with one "tenant:token" per line; bearer tokens map to tenants.'),
  opt('auth.tokens', 'BUILDYARD_TOKENS', list, [], 'Inline "tenant:token" pairs (comma list), added to those of tokensFile.'),
  opt('auth.entitlements', 'BUILDYARD_ENTITLEMENTS', list, [], 'Entitlements granted to tenants, as `tenant:entitlement` entries (`*:` for every tenant): `network.host` allows RUN --network=host and --network host builds, `security.insecure` allows RUN --security=insecure (buildkitd\'s --allow-insecure-entitlement); a build also needs its client to ask (--allow). None by default.'),
  opt('auth.secretsKey', 'BUILDYARD_SECRETS_KEY', z.string().regex(/^([0-9a-f]{64})?$/, 'expected 64 hex characters (openssl rand -hex 32)'), '', 'Key (hex, 32 bytes) sealing build secrets and registry logins between frontend and workers; the same on every process. Empty: builds with secrets are refused.'),
  opt('limits.maxContextBytes', 'BUILDYARD_MAX_CONTEXT_BYTES', bytes, 10 * 1024 ** 3, 'Largest build context accepted, in bytes.'),
  opt('limits.maxContextFiles', 'BUILDYARD_MAX_CONTEXT_FILES', bytes, 1_000_000, 'Most files accepted in one build context.'),
  opt('limits.maxExportBytes', 'BUILDYARD_MAX_EXPORT_BYTES', bytes, 0, 'Most bytes one `type=local` or `type=tar` export may unpack on the frontend before sending it (all its platforms and layers, each file at the size its layer declares); 0: no fixed cap. Either way the exports running at once on a frontend share 90% of the free space of its state dir\'s disk. An export over it fails naming this option; `type=image` and `type=oci` send the layers without unpacking them.'),
  opt('limits.tenantConcurrency', 'BUILDYARD_TENANT_CONCURRENCY', z.union([z.literal('fleet'), z.coerce.number().int().positive()]), 'fleet', 'Stages of one tenant that may run at the same time across the fleet: `fleet` follows the fleet (every free slot while no other tenant has stages ready, else an equal share of the live slots), or a fixed number.'),
  opt('limits.stepTimeoutMs', 'BUILDYARD_STEP_TIMEOUT_MS', ms, 3_600_000, 'Time limit of one RUN step.'),
  opt('limits.fetchConnectTimeoutMs', 'BUILDYARD_FETCH_CONNECT_TIMEOUT_MS', ms, 30_000, 'Time a build\'s download (ADD <url>, a git fetch) may take to connect, TLS included.'),
  opt('limits.fetchIdleTimeoutMs', 'BUILDYARD_FETCH_IDLE_TIMEOUT_MS', ms, 60_000, 'Longest silence allowed in a build\'s download (ADD <url>, git fetches, registry pulls), waiting for the answer or within the body; then the step fails.'),
  opt('limits.sessionIdleTimeoutMs', 'BUILDYARD_SESSION_IDLE_TIMEOUT_MS', ms, 60_000, 'Longest a client may go silent in the middle of a transfer the frontend waits on: its context upload (ContextSync; a BuildKit client\'s DiffCopy of a --local), a blob of its OCI layout or local cache (the content store\'s Read), its replies while the frontend writes it a local cache, its reading of an output sent to it. The wait starts again with every message (on a BuildKit session, every byte), so a slow upload that keeps moving is never cut; past it the transfer fails in one line naming what the client was sending, and the call is cancelled. SSH agent connections (RUN --mount=type=ssh) may idle as long as their step runs.'),
  opt('limits.maxLogBytesPerStep', 'BUILDYARD_MAX_LOG_BYTES', bytes, 2 * 1024 ** 2, 'Log bytes kept per step; later output is dropped with a marker.'),
  opt('worker.id', 'BUILDYARD_WORKER_ID', z.string(), '', 'Worker id; empty means hostname-pid.'),
  opt('worker.capacity', 'BUILDYARD_WORKER_CAPACITY', z.coerce.number().int().positive(), 2, 'Stages this worker runs at once.'),
  opt('worker.platforms', 'BUILDYARD_WORKER_PLATFORMS', list, [], 'Platforms to offer; empty means every native and binfmt-emulated platform found.'),
  opt('worker.healthListen', 'BUILDYARD_WORKER_HEALTH_LISTEN', z.string(), '', 'Address of the worker\'s HTTP /healthz and /metrics endpoint; empty disables it.'),
  opt('worker.compression', 'BUILDYARD_COMPRESSION', z.enum(['gzip', 'zstd']), 'gzip', 'Compression of new layers.'),
  opt('worker.keepStorageBytes', 'BUILDYARD_WORKER_KEEP_STORAGE', bytes, 20 * 1024 ** 3, 'Local snapshot and blob storage kept by garbage collection.'),
  opt('worker.egress.enabled', 'BUILDYARD_WORKER_EGRESS', bool, true, 'RUN steps on the default network reach the outside (DNS, TCP, UDP) through their own network namespace, a veth to this host, NAT and an nftables table per step (a sandboxed step\'s network is kept for the same tenant\'s next step, never another\'s); false gives them only loopback. Needs root, iproute2 and nftables; sets net.ipv4.ip_forward=1. ADD <url> downloads (fetched by the worker) obey the same lists whether this is on or off.'),
  opt('worker.egress.pool', 'BUILDYARD_WORKER_EGRESS_POOL', z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'expected an IPv4 CIDR range'), '10.89.0.0/16', 'Addresses cut into one /30 per running RUN step; pick a range nothing real uses (it is unreachable from steps). Workers on one host may share it.'),
  opt('worker.egress.deny', 'BUILDYARD_WORKER_EGRESS_DENY', list, [], 'Destinations builds (RUN steps, ADD <url> and its redirects) may not reach unless listed in allow (comma list of IPv4 addresses, CIDR ranges or host names resolved at start); `0.0.0.0/0` makes allow an allowlist. Frontends, dashboard and other workers on public addresses belong here (private ones are denied by worker.egress.denyPrivate). Always denied besides: this host\'s addresses, Redis, the blob-store, insecure and trusted registries, loopback, link-local and metadata addresses, multicast.'),
  opt('worker.egress.denyPrivate', 'BUILDYARD_WORKER_EGRESS_DENY_PRIVATE', bool, true, 'Builds (RUN steps, ADD <url>, the registries they name) may not reach the private ranges 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and 100.64.0.0/10 unless listed in worker.egress.allow: where the cluster\'s frontends, dashboard, workers, pods, Services and Docker networks live, whatever addresses a deployment gave them, and the LAN around them. Allow an internal package mirror by its address (a private registry: registry.trusted); false leaves private addresses to worker.egress.deny (as BuildKit, which lets builds reach them).'),
  opt('worker.egress.allow', 'BUILDYARD_WORKER_EGRESS_ALLOW', list, [], 'Exceptions to worker.egress.deny and worker.egress.denyPrivate (same forms); never to the always-denied addresses.'),
  opt('worker.egress.tenantDeny', 'BUILDYARD_WORKER_EGRESS_TENANT_DENY', list, [], 'Per-tenant additions to worker.egress.deny, as `tenant=range` entries (comma list).'),
  opt('worker.egress.tenantAllow', 'BUILDYARD_WORKER_EGRESS_TENANT_ALLOW', list, [], 'Per-tenant additions to worker.egress.allow, as `tenant=range` entries (comma list).'),
  opt('worker.seccompProfile', 'BUILDYARD_WORKER_SECCOMP_PROFILE', z.string().min(1), '/usr/share/buildyard/seccomp/docker-default.json', 'Docker-format seccomp profile of RUN steps; the default is Docker\'s own default profile (infra/dev/setup.sh installs it), which also refuses new user namespaces and mounts. `unconfined` turns seccomp off for every step; RUN --security=insecure is always unconfined.'),
  opt('worker.sandbox.pids', 'BUILDYARD_WORKER_SANDBOX_PIDS', bytes, 16384, 'Most processes and threads one RUN step may have at once (its cgroup\'s pids.max); 0: no limit. A step that hits it fails naming the limit.'),
  opt('worker.sandbox.memoryBytes', 'BUILDYARD_WORKER_SANDBOX_MEMORY', bytes, 0, 'Memory of one RUN step including page cache (its cgroup\'s memory limit, no swap beyond it); 0: no limit. A step killed at it fails naming the limit.'),
  opt('worker.sandbox.cpus', 'BUILDYARD_WORKER_SANDBOX_CPUS', z.coerce.number().nonnegative(), 0, 'CPU time of one RUN step, in CPUs (e.g. 1.5; its cgroup\'s CPU quota); 0: no limit. A step over it is slowed down, not failed.'),
  opt('worker.sandbox.diskBytes', 'BUILDYARD_WORKER_SANDBOX_DISK', bytes, 0, 'Bytes one RUN step may add to its root filesystem (its overlay upper dir, measured while it runs and at its end); 0: no limit. A step over it is stopped and fails naming the limit.'),
  opt('worker.sandbox.tenantLimits', 'BUILDYARD_WORKER_SANDBOX_TENANT_LIMITS', list, [], 'Per-tenant values replacing the worker.sandbox limits for that tenant\'s steps, as `tenant:limit=value` entries (comma list), e.g. `alice:memoryBytes=2147483648,alice:pids=512`.'),
  opt('worker.dns.nameservers', 'BUILDYARD_WORKER_DNS_NAMESERVERS', list, [], 'Nameservers written into RUN steps\' /etc/resolv.conf (buildkitd\'s [dns]); empty: the host\'s, without loopback ones (systemd-resolved\'s upstreams instead of its stub), else 8.8.8.8 and 8.8.4.4 as BuildKit.'),
  opt('worker.dns.search', 'BUILDYARD_WORKER_DNS_SEARCH', list, [], 'Search domains for worker.dns.nameservers.'),
  opt('worker.dns.options', 'BUILDYARD_WORKER_DNS_OPTIONS', list, [], 'resolv.conf options for worker.dns.nameservers, e.g. ndots:0.'),
  opt('gc.intervalMs', 'BUILDYARD_GC_INTERVAL_MS', ms, 600_000, 'How often the frontend collects unreferenced blobs in the shared store.'),
  opt('gc.keepStorageBytes', 'BUILDYARD_GC_KEEP_STORAGE', bytes, 50 * 1024 ** 3, 'Shared blob store size above which unreferenced blobs are removed, oldest first.'),
  opt('gc.keepDurationMs', 'BUILDYARD_GC_KEEP_DURATION_MS', ms, 7 * 24 * 3600 * 1000, 'Unreferenced blobs older than this are removed whatever the size.'),
  opt('gc.contextMaxAgeMs', 'BUILDYARD_GC_CONTEXT_MAX_AGE_MS', ms, 7 * 24 * 3600 * 1000, 'Build contexts no tenant synced for this long (and no running build uses) are removed from the blob store and the frontends\' copies, at each GC run and at `buildyard prune`.'),
  opt('history.retentionMs', 'BUILDYARD_HISTORY_RETENTION_MS', ms, 7 * 24 * 3600 * 1000, 'How long the frontend keeps each build\'s record and its event stream (its logs), for `buildyard history` and the dashboard; `history rm` removes them sooner. Counted from the build\'s start.'),
  opt('heartbeat.intervalMs', 'BUILDYARD_HEARTBEAT_MS', ms, 2_000, 'How often workers report they are alive.'),
  opt('heartbeat.timeoutMs', 'BUILDYARD_HEARTBEAT_TIMEOUT_MS', ms, 10_000, 'Silence after which a worker counts as gone and its stages are retried elsewhere.'),
  opt('dashboard.listen', 'BUILDYARD_DASHBOARD_LISTEN', loopbackOrAny, '127.0.0.1:8373', 'Address of the dashboard.'),
  opt('dashboard.readToken', 'BUILDYARD_DASHBOARD_READ_TOKEN', z.string(), '', 'Token for read-only dashboard access.'),
  opt('dashboard.adminToken', 'BUILDYARD_DASHBOARD_ADMIN_TOKEN', z.string(), '', 'Token for dashboard operations (drain, cancel, prune).'),
  opt('dashboard.metricsToken', 'BUILDYARD_DASHBOARD_METRICS_TOKEN', z.string(), '', 'Token that reads the dashboard\'s `GET /metrics` only (403 elsewhere), for Prometheus or KEDA: the read token sees every tenant\'s builds and logs.'),
  opt('telemetry.metricsToken', 'BUILDYARD_METRICS_TOKEN', z.string(), '', 'Token that `GET /metrics` of buildyardd\'s and the workers\' health endpoints (`frontend.healthListen`, `worker.healthListen`) requires as `Authorization: Bearer <token>`; empty leaves /metrics open. Set it wherever tenants can reach a health port: the metrics carry tenant names and activity. `/healthz` and `/readyz` stay open for probes.'),
  opt('log.level', 'BUILDYARD_LOG_LEVEL', z.enum(['debug', 'info', 'warn', 'error']), 'info', 'Log level of every process.'),
] as const;
