// A private base image one tenant pulled with its login is not another tenant's to use: its
// layers then sit in the fleet's content-addressed stores and its results in the first tenant's
// cache, so every way to name it (tag, digest, COPY --from, RUN --mount from) must go back to the
// registry with the asking build's own credentials, and fail without them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SolveRequest } from '@buildyard/proto';
import { startCluster, startRegistry, testWorkDir, type Cluster, type RegistryService } from '@buildyard/testkit';
import { solve, type SolveOutcome } from '../grpcClient.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster whose worker runs runc)';
const [user, password] = ['owner', `pw-${process.pid}`];
let work: string;
let registry: RegistryService | undefined;
let registryHost: string;
let cluster: Cluster;
let baseRef: string;
let baseDigest: string;

before(async () => {
  if (skip) return;
  work = testWorkDir('buildyard-private-images-');
  registry = await startRegistry({ login: { user, password } });
  registryHost = registry.host;
  cluster = await startCluster({ workers: 1, tenants: ['other'], trustRegistries: [registryHost] });
  // The private image: the seeded busybox, copied under the owner's login.
  baseRef = `${registryHost}/private/base:1`;
  execFileSync('skopeo', ['copy', '--quiet', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', '--dest-creds', `${user}:${password}`,
    `docker://${cluster.busybox.reference}`, `docker://${baseRef}`]);
  baseDigest = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--creds', `${user}:${password}`, '--format', '{{.Digest}}', `docker://${baseRef}`], { encoding: 'utf8' }).trim();
});
after(async () => {
  await cluster?.stop();
  await registry?.stop();
});

const login = () => ({ registry: registryHost, username: user, password, identityToken: '' });

async function build(name: string, dockerfile: string, request: Partial<SolveRequest>, token?: string): Promise<SolveOutcome> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  return solve(cluster, dir, { platforms: ['linux/amd64'], ...request }, { token });
}

/** Steps a worker executed (not answered from the cache). */
const ran = (o: SolveOutcome) => o.events.filter((e) => e.vertex?.workerId && !e.vertex.cached && e.vertex.completedMs).map((e) => e.vertex!.name);

test('a private base image the owner pulled is refused to another tenant by tag, digest, COPY --from and RUN --mount, and to a wrong login', { skip, timeout: 180_000 }, async () => {
  const uses = {
    tag: `FROM ${baseRef}\nRUN echo pulled > /p\n`,
    digest: `FROM ${registryHost}/private/base@${baseDigest}\nRUN echo pulled > /p\n`,
    copyFrom: `FROM ${cluster.busybox.reference}\nCOPY --from=${baseRef} /bin/busybox /stolen\n`,
    mountFrom: `FROM ${cluster.busybox.reference}\nRUN --mount=type=bind,from=${registryHost}/private/base@${baseDigest},target=/m cp /m/bin/busybox /stolen\n`,
  };
  // The owner pulls it every way first, so its layers and results are in the fleet's stores.
  for (const [name, dockerfile] of Object.entries(uses)) {
    const owned = await build(`owner-${name}`, dockerfile, { registryAuth: [login()] });
    assert.equal(owned.error, undefined, `${name}: the owner builds with its login: ${owned.error?.message}`);
  }
  for (const [name, dockerfile] of Object.entries(uses)) {
    const attempts: Array<[string, Partial<SolveRequest>]> = [['without a login', {}], ['with a wrong password', { registryAuth: [{ ...login(), password: 'guess' }] }]];
    for (const [who, request] of attempts) {
      const other = await build(`other-${name}-${who.replace(/ /g, '-')}`, dockerfile, request, cluster.tokens.other);
      assert.ok(other.error, `${name} ${who}: the other tenant's build fails`);
      assert.match(other.error.message, /401|unauthorized|authentication required|denied/i, `${name} ${who}: ${other.error.message}`);
      assert.deepEqual(ran(other), [], `${name} ${who}: nothing ran`);
    }
  }
  // The same build with the other tenant's own correct login works: it is the registry that decides.
  const allowed = await build('other-logged-in', uses.digest, { registryAuth: [login()] }, cluster.tokens.other);
  assert.equal(allowed.error, undefined, allowed.error?.message);
});
