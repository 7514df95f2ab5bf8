#!/usr/bin/env node
// Renders Buildyard's Kubernetes manifests from values.yaml (plus the files given with -f).
//
// Why not a Helm chart: there is no helm binary in Debian 12 nor in the npm registry, so a chart
// could not be rendered or validated in CI here, and an untested chart is worse than none. This
// renderer is plain code over a documented values file; its output is ordinary YAML that
// `kubectl apply -f` takes, and test/e2e/deploy.unit.test.ts validates it against the Kubernetes
// schemas (kubernetes-models) and checks that the references between objects hold.
//
//   node infra/deploy/kubernetes/render.mjs [-f values.yaml]... > buildyard.yaml
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { stringify as stringifyToml } from 'smol-toml';

const here = fileURLToPath(new URL('.', import.meta.url));

/** The default values (values.yaml beside this file). */
export function defaultValues() {
  return parseYaml(readFileSync(resolve(here, 'values.yaml'), 'utf8'));
}

/** Maps merge key by key; lists and scalars of `over` replace those of `base`. */
export function mergeValues(base, over) {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeValues(base[k], v) : v;
  return out;
}

const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Where the image keeps the repository (infra/deploy/Dockerfile's WORKDIR). */
export const APP_DIR = '/app';
const CONFIG_DIR = '/etc/buildyard';
const STATE_DIR = '/var/lib/buildyard';

/** The manifests for `values` (merged over the defaults), as a list of Kubernetes objects. */
export function render(userValues = {}) {
  const v = mergeValues(defaultValues(), userValues);
  check(v);
  const ns = v.namespace;
  const labels = (component) => ({ 'app.kubernetes.io/name': 'buildyard', 'app.kubernetes.io/component': component });
  const meta = (name, component, extra = {}) => ({ name, namespace: ns, labels: labels(component), ...extra });
  const image = `${v.image.repository}:${v.image.tag}`;
  const redisUrl = v.redis.externalUrl || `redis://buildyard-redis.${ns}.svc:6379`;
  const registryHost = v.registry.external || `buildyard-registry.${ns}.svc:5000`;
  const secretEnv = (env, key, optional = false) => ({ name: env, valueFrom: { secretKeyRef: { name: v.secrets.name, key, ...(optional ? { optional: true } : {}) } } });
  const configVolume = { name: 'config', configMap: { name: 'buildyard-config' } };
  const configMount = { name: 'config', mountPath: `${CONFIG_DIR}/buildyard.toml`, subPath: 'buildyard.toml', readOnly: true };
  // With a registry blob store pods share no directory: each keeps its copies under its own
  // state volume, so no ReadWriteMany volume is rendered or mounted.
  const sharedFs = v.blobStore.type === 'fs';
  const sharedVolumes = sharedFs ? [{ name: 'shared', persistentVolumeClaim: { claimName: v.shared.existingClaim || 'buildyard-shared' } }] : [];
  const sharedMounts = sharedFs ? [{ name: 'shared', mountPath: v.shared.mountPath }] : [];
  // The bundled Redis requires a password (the Secret's redis-password): every process gets
  // the URL with it from the environment; the ConfigMap holds the URL without it.
  const redisEnv = v.redis.externalUrl ? [] : [
    { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: v.secrets.name, key: 'redis-password' } } },
    { name: 'BUILDYARD_REDIS_URL', value: `redis://:$(REDIS_PASSWORD)@buildyard-redis.${ns}.svc:6379` },
  ];
  const commonEnv = [
    { name: 'BUILDYARD_CONFIG', value: `${CONFIG_DIR}/buildyard.toml` },
    secretEnv('BUILDYARD_SECRETS_KEY', 'secrets-key'),
    secretEnv('BUILDYARD_METRICS_TOKEN', 'metrics-token', true),
    ...redisEnv,
  ];
  const httpProbe = (path, port, periodSeconds, failureThreshold) => ({ httpGet: { path, port }, periodSeconds, timeoutSeconds: 5, failureThreshold });
  const objects = [];

  if (v.createNamespace) objects.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'app.kubernetes.io/name': 'buildyard' } } });

  // Options every process reads; listen addresses and paths are fixed here so the manifests
  // and the config cannot disagree about ports and mounts.
  const toml = mergeValues(v.config, {
    redis: { url: redisUrl },
    stateDir: STATE_DIR,
    sharedDir: sharedFs ? v.shared.mountPath : `${STATE_DIR}/shared`,
    blobStore: sharedFs ? { type: 'fs' } : { type: 'registry', repository: v.blobStore.repository || `${registryHost}/buildyard/blobs` },
    registry: {
      insecure: v.registry.external ? (v.config.registry?.insecure ?? []) : [registryHost],
      // Every tenant reaches the bundled registry (it is in registry.insecure): each gets its own namespace there.
      ...(!v.registry.external && v.registry.tenantScoped ? { tenantScoped: [registryHost], sharedReadOnly: (v.registry.sharedReadOnly ?? []).map((p) => `${registryHost}/${p}`) } : {}),
    },
    frontend: { listen: `0.0.0.0:${v.frontend.grpcPort}`, healthListen: `0.0.0.0:${v.frontend.healthPort}` },
    auth: { tokensFile: `${CONFIG_DIR}/secrets/tokens` },
    dashboard: { listen: `0.0.0.0:${v.dashboard.port}` },
  });
  objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('buildyard-config', 'config'), data: { 'buildyard.toml': `# Rendered by infra/deploy/kubernetes/render.mjs; options in docs/configuration.md\n${stringifyToml(toml).trimEnd()}\n` } });

  if (v.secrets.create) {
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(v.secrets.name, 'config'), type: 'Opaque', stringData: {
      tokens: v.secrets.tokens, 'secrets-key': v.secrets.secretsKey,
      'dashboard-read-token': v.secrets.dashboardReadToken, 'dashboard-admin-token': v.secrets.dashboardAdminToken,
      ...(v.secrets.dashboardMetricsToken ? { 'dashboard-metrics-token': v.secrets.dashboardMetricsToken } : {}),
      ...(v.secrets.metricsToken ? { 'metrics-token': v.secrets.metricsToken } : {}),
      ...(v.redis.externalUrl ? {} : { 'redis-password': v.secrets.redisPassword }),
    } });
  }

  if (sharedFs && !v.shared.existingClaim) {
    objects.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: meta('buildyard-shared', 'shared'), spec: {
      accessModes: [v.shared.accessMode], resources: { requests: { storage: v.shared.size } },
      ...(v.shared.storageClassName ? { storageClassName: v.shared.storageClassName } : {}),
    } });
  }

  // Frontend: gRPC on grpcPort, /healthz (process up) and /readyz (Redis answers) on healthPort.
  const tls = v.frontend.tls.secretName;
  objects.push({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta('buildyard-frontend', 'frontend'), spec: {
    replicas: v.frontend.replicas,
    selector: { matchLabels: labels('frontend') },
    template: { metadata: { labels: labels('frontend') }, spec: {
      containers: [{
        name: 'buildyardd', image, imagePullPolicy: v.image.pullPolicy,
        command: ['node', `${APP_DIR}/apps/buildyardd/dist/main.js`],
        env: [...commonEnv, ...(tls ? [
          { name: 'BUILDYARD_TLS_CERT', value: `${CONFIG_DIR}/tls/tls.crt` },
          { name: 'BUILDYARD_TLS_KEY', value: `${CONFIG_DIR}/tls/tls.key` },
          ...(v.frontend.tls.clientCa ? [{ name: 'BUILDYARD_TLS_CLIENT_CA', value: `${CONFIG_DIR}/tls/ca.crt` }] : []),
        ] : [])],
        ports: [{ name: 'grpc', containerPort: v.frontend.grpcPort }, { name: 'health', containerPort: v.frontend.healthPort }],
        livenessProbe: httpProbe('/healthz', 'health', 10, 3),
        readinessProbe: httpProbe('/readyz', 'health', 5, 2),
        resources: v.frontend.resources,
        volumeMounts: [configMount, { name: 'secrets', mountPath: `${CONFIG_DIR}/secrets`, readOnly: true }, ...sharedMounts,
          { name: 'state', mountPath: STATE_DIR }, ...(tls ? [{ name: 'tls', mountPath: `${CONFIG_DIR}/tls`, readOnly: true }] : [])],
      }],
      volumes: [configVolume, { name: 'secrets', secret: { secretName: v.secrets.name, items: [{ key: 'tokens', path: 'tokens' }] } }, ...sharedVolumes,
        { name: 'state', emptyDir: {} }, ...(tls ? [{ name: 'tls', secret: { secretName: tls } }] : [])],
    } },
  } });
  objects.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('buildyard-frontend', 'frontend', Object.keys(v.frontend.service.annotations).length ? { annotations: v.frontend.service.annotations } : {}), spec: {
    type: v.frontend.service.type, selector: labels('frontend'),
    ports: [{ name: 'grpc', port: v.frontend.grpcPort, targetPort: 'grpc' }, { name: 'health', port: v.frontend.healthPort, targetPort: 'health' }],
  } });

  // Workers: privileged (runc, overlayfs mounts, cgroups), pinned to their architecture. The id
  // is the pod name so the exec probe can find the worker's heartbeat in Redis.
  for (const w of v.workers) {
    const name = `buildyard-worker-${w.name}`;
    const component = `worker-${w.name}`;
    const probe = (args, periodSeconds, failureThreshold) => ({ exec: { command: ['node', `${APP_DIR}/infra/deploy/probes/worker-alive.mjs`, ...args] }, periodSeconds, timeoutSeconds: 10, failureThreshold });
    const podSpec = {
      nodeSelector: { 'kubernetes.io/arch': w.arch, ...w.nodeSelector },
      ...(w.tolerations.length ? { tolerations: w.tolerations } : {}),
      terminationGracePeriodSeconds: w.terminationGracePeriodSeconds,
      containers: [{
        name: 'worker', image, imagePullPolicy: v.image.pullPolicy,
        command: ['node', `${APP_DIR}/apps/worker/dist/main.js`, 'serve'],
        env: [...commonEnv,
          { name: 'BUILDYARD_WORKER_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'BUILDYARD_WORKER_CAPACITY', value: String(w.capacity) },
          ...(w.platforms ? [{ name: 'BUILDYARD_WORKER_PLATFORMS', value: w.platforms }] : [])],
        securityContext: { privileged: true },
        // Startup allows for registration; liveness restarts a worker whose heartbeat stopped
        // while Redis answers; readiness also drops it while Redis is unreachable.
        startupProbe: probe(['--ready'], 5, 24),
        livenessProbe: probe([], 30, 3),
        readinessProbe: probe(['--ready'], 15, 2),
        resources: w.resources,
        volumeMounts: [configMount, ...sharedMounts, { name: 'state', mountPath: STATE_DIR }],
      }],
      volumes: [configVolume, ...sharedVolumes,
        w.state.type === 'hostPath' ? { name: 'state', hostPath: { path: w.state.path, type: 'DirectoryOrCreate' } } : { name: 'state', emptyDir: {} }],
    };
    const template = { metadata: { labels: labels(component) }, spec: podSpec };
    const selector = { matchLabels: labels(component) };
    objects.push(w.kind === 'DaemonSet'
      ? { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: meta(name, component), spec: { selector, template, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } } } }
      : { apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta(name, component), spec: { replicas: w.replicas, selector, template } });
    if (w.autoscaling?.enabled) objects.push(scaledObject(v, w, name, meta(name, component)));
  }

  const redisPing = ['sh', '-c', 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG'];
  if (!v.redis.externalUrl) {
    // BullMQ needs noeviction; AOF (fsync every second) keeps queues and the cache index
    // across restarts.
    objects.push({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: meta('buildyard-redis', 'redis'), spec: {
      serviceName: 'buildyard-redis', replicas: 1, selector: { matchLabels: labels('redis') },
      template: { metadata: { labels: labels('redis') }, spec: { containers: [{
        name: 'redis', image: v.redis.image,
        env: [redisEnv[0]],
        // Kubernetes expands $(REDIS_PASSWORD) in args; protected mode stays on.
        args: ['--requirepass', '$(REDIS_PASSWORD)', '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory', v.redis.maxmemory, '--maxmemory-policy', 'noeviction', '--dir', '/data'],
        ports: [{ name: 'redis', containerPort: 6379 }],
        livenessProbe: { exec: { command: redisPing }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
        readinessProbe: { exec: { command: redisPing }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 2 },
        resources: v.redis.resources,
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }] } },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: {
        accessModes: ['ReadWriteOnce'], resources: { requests: { storage: v.redis.size } },
        ...(v.redis.storageClassName ? { storageClassName: v.redis.storageClassName } : {}),
      } }],
    } });
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('buildyard-redis', 'redis'), spec: {
      selector: labels('redis'), ports: [{ name: 'redis', port: 6379, targetPort: 'redis' }],
    } });
  }

  if (!v.registry.external) {
    objects.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: meta('buildyard-registry', 'registry'), spec: {
      accessModes: ['ReadWriteOnce'], resources: { requests: { storage: v.registry.size } },
      ...(v.registry.storageClassName ? { storageClassName: v.registry.storageClassName } : {}),
    } });
    objects.push({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta('buildyard-registry', 'registry'), spec: {
      replicas: 1, strategy: { type: 'Recreate' }, selector: { matchLabels: labels('registry') },
      template: { metadata: { labels: labels('registry') }, spec: {
        containers: [{
          name: 'registry', image: v.registry.image,
          env: [{ name: 'REGISTRY_STORAGE_DELETE_ENABLED', value: 'true' }],
          ports: [{ name: 'registry', containerPort: 5000 }],
          livenessProbe: httpProbe('/v2/', 'registry', 10, 3),
          readinessProbe: httpProbe('/v2/', 'registry', 5, 2),
          resources: v.registry.resources,
          volumeMounts: [{ name: 'data', mountPath: '/var/lib/registry' }],
        }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'buildyard-registry' } }],
      } },
    } });
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('buildyard-registry', 'registry'), spec: {
      selector: labels('registry'), ports: [{ name: 'registry', port: 5000, targetPort: 'registry' }],
    } });
  }

  if (v.dashboard.enabled) {
    objects.push({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: meta('buildyard-dashboard', 'dashboard'), spec: {
      replicas: v.dashboard.replicas, selector: { matchLabels: labels('dashboard') },
      template: { metadata: { labels: labels('dashboard') }, spec: {
        containers: [{
          name: 'dashboard', image, imagePullPolicy: v.image.pullPolicy,
          command: ['node', `${APP_DIR}/apps/dashboard/dist/main.js`],
          env: [{ name: 'BUILDYARD_CONFIG', value: `${CONFIG_DIR}/buildyard.toml` }, ...redisEnv,
            secretEnv('BUILDYARD_DASHBOARD_READ_TOKEN', 'dashboard-read-token'),
            secretEnv('BUILDYARD_DASHBOARD_ADMIN_TOKEN', 'dashboard-admin-token'),
            // The token Prometheus scrapes /metrics with: it reads nothing else.
            secretEnv('BUILDYARD_DASHBOARD_METRICS_TOKEN', 'dashboard-metrics-token', true)],
          ports: [{ name: 'http', containerPort: v.dashboard.port }],
          // /healthz answers 200 only while Redis is reachable, so it also serves readiness.
          livenessProbe: httpProbe('/healthz', 'http', 20, 6),
          readinessProbe: httpProbe('/healthz', 'http', 5, 2),
          resources: v.dashboard.resources,
          volumeMounts: [configMount],
        }],
        volumes: [configVolume],
      } },
    } });
    objects.push({ apiVersion: 'v1', kind: 'Service', metadata: meta('buildyard-dashboard', 'dashboard'), spec: {
      type: v.dashboard.service.type, selector: labels('dashboard'), ports: [{ name: 'http', port: v.dashboard.port, targetPort: 'http' }],
    } });
  }
  return objects;
}

/**
 * A KEDA ScaledObject for one Deployment worker set, on the dashboard's per-platform metrics as
 * Prometheus scraped them. Demand is every stage of the platform that waits (held by a tenant
 * limit or queued; not those waiting for an identical stage) or runs: replicas =
 * ceil(demand / capacity). The oldest wait adds workers when stages sit longer than
 * `oldestWaitSeconds` even though the demand looks covered (e.g. slots held by long steps).
 */
function scaledObject(v, w, name, metadata) {
  const a = w.autoscaling;
  const platform = a.platform || `linux/${w.arch}`;
  const sel = `platform="${platform}"`;
  const prometheus = (query, threshold, metricType) => ({
    type: 'prometheus', ...(metricType ? { metricType } : {}),
    metadata: { serverAddress: v.autoscaling.prometheusUrl, query, threshold: String(threshold), ...(v.autoscaling.prometheusAuthModes ? { authModes: v.autoscaling.prometheusAuthModes } : {}) },
    ...(v.autoscaling.triggerAuthentication ? { authenticationRef: { name: v.autoscaling.triggerAuthentication } } : {}),
  });
  return {
    apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata,
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicaCount: a.minReplicas, maxReplicaCount: a.maxReplicas,
      pollingInterval: a.pollingIntervalSeconds, cooldownPeriod: a.cooldownSeconds,
      // Scale down no faster than a stage drains: workers finish their stages on SIGTERM.
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: a.cooldownSeconds, policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] } } } },
      triggers: [
        prometheus(`(sum(buildyard_stages_waiting{${sel},reason!="dedupe"}) or vector(0)) + (sum(buildyard_stages_running{${sel}}) or vector(0))`, w.capacity, 'AverageValue'),
        prometheus(`max(buildyard_stages_oldest_wait_seconds{${sel}}) or vector(0)`, a.oldestWaitSeconds, 'Value'),
      ],
    },
  };
}

/** One-line errors for values that would render nonsense. */
function check(v) {
  const fail = (what) => { throw new Error(`invalid values: ${what}`); };
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v.namespace)) fail(`namespace "${v.namespace}" is not a DNS label`);
  if (!Array.isArray(v.workers) || v.workers.length === 0) fail('workers must list at least one worker set');
  const names = new Set();
  for (const w of v.workers) {
    if (!['amd64', 'arm64', 'arm', 's390x', 'ppc64le', 'riscv64'].includes(w.arch)) fail(`workers[${w.name}].arch "${w.arch}" is not a Kubernetes node architecture`);
    if (!['DaemonSet', 'Deployment'].includes(w.kind)) fail(`workers[${w.name}].kind must be DaemonSet or Deployment`);
    if (!['hostPath', 'emptyDir'].includes(w.state?.type)) fail(`workers[${w.name}].state.type must be hostPath or emptyDir`);
    if (names.has(w.name)) fail(`workers: name "${w.name}" used twice`);
    if (w.autoscaling?.enabled) {
      // A DaemonSet has one pod per node: only a Deployment has replicas to scale.
      if (w.kind !== 'Deployment') fail(`workers[${w.name}].autoscaling needs kind Deployment (a DaemonSet runs one worker per node)`);
      if (!v.autoscaling?.prometheusUrl) fail(`workers[${w.name}].autoscaling needs autoscaling.prometheusUrl (the Prometheus that scrapes the dashboard's /metrics)`);
      if (!(w.autoscaling.minReplicas >= 0 && w.autoscaling.maxReplicas >= Math.max(1, w.autoscaling.minReplicas))) fail(`workers[${w.name}].autoscaling: maxReplicas must be >= 1 and >= minReplicas`);
    }
    names.add(w.name);
  }
  if (v.secrets.create && !v.redis.externalUrl && !/^[A-Za-z0-9_-]{16,}$/.test(v.secrets.redisPassword ?? '')) fail('secrets.redisPassword must be at least 16 URL-safe characters (openssl rand -hex 24) when secrets.create is true');
  if (v.secrets.create && !/^[0-9a-f]{64}$/.test(v.secrets.secretsKey)) fail('secrets.secretsKey must be 64 hex characters (openssl rand -hex 32) when secrets.create is true');
  if (!Array.isArray(v.registry.sharedReadOnly ?? []) || !(v.registry.sharedReadOnly ?? []).every((p) => typeof p === 'string' && /^[a-z0-9][^\s:]*$/.test(p))) fail('registry.sharedReadOnly must list repository prefixes of the bundled registry (e.g. [library])');
  if (!['fs', 'registry'].includes(v.blobStore?.type)) fail(`blobStore.type "${v.blobStore?.type}" must be fs or registry`);
  if (v.redis.externalUrl && !/^rediss?:\/\//.test(v.redis.externalUrl)) fail('redis.externalUrl must start with redis:// or rediss://');
}

/** The objects as one multi-document YAML stream. */
export function toYaml(objects) {
  return objects.map((o) => stringifyYaml(o, { lineWidth: 0 })).join('---\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let values = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-f' || args[i] === '--values') values = mergeValues(values, parseYaml(readFileSync(args[++i] ?? '', 'utf8')) ?? {});
    else { console.error(`render.mjs: unknown argument "${args[i]}"; usage: render.mjs [-f values.yaml]...`); process.exit(2); }
  }
  try {
    process.stdout.write(`# Rendered by infra/deploy/kubernetes/render.mjs; do not edit, re-render.\n${toYaml(render(values))}`);
  } catch (err) {
    console.error(`render.mjs: ${err.message}`);
    process.exit(1);
  }
}
