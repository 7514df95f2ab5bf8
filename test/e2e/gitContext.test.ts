// Git contexts (issues 17 and 20): `buildyard build https://host/repo.git#ref:dir`, and the same
// URL through the BuildKit endpoint (`buildctl --opt context=`, `docker buildx build URL`). The
// frontend fetches the repository from a real git server (git http-backend) standing outside
// the cluster (its own network namespace, outsideNetwork.ts), under the rules RUN steps and ADD
// <url> obey; a commit already fetched is not fetched again. As the attacker writes it, a git
// URL aims at what a build must not reach (Redis, the worker host, a metadata address, a denied
// service, a tenant's denied range, a redirect to loopback): each is refused in one line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceTools, startCluster, startGitServer, type Cluster, type GitServer } from '@buildyard/testkit';
import { runCli, runTool as run } from './runProcess.js';
import { startOutside, type Outside } from './security/outsideNetwork.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';
const tools = referenceTools('buildctl', 'docker-buildx');
const nonce = `${process.pid}-${Date.now()}`;

let outside: Outside;
let git: GitServer;
let deniedGit: GitServer;
let cluster: Cluster;
let addr: string;
let work: string;
let shas: string[];

before(async () => {
  if (skip) return;
  outside = await startOutside();
  git = await startGitServer({ host: outside.web, netns: outside.ns });
  deniedGit = await startGitServer({ host: outside.denied, netns: outside.ns });
  cluster = await startCluster({
    workers: 1, tenants: ['bob'],
    env: {
      BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default',
      BUILDYARD_WORKER_EGRESS_DENY: outside.denied, BUILDYARD_WORKER_EGRESS_TENANT_DENY: `bob=${outside.web}`,
    },
  });
  addr = cluster.buildkit!;
  work = mkdtempSync(join(tmpdir(), 'buildyard-git-e2e-'));
  const dockerfile = `FROM ${cluster.busybox.reference}\nCOPY . /ctx\nRUN cat /ctx/a.txt && ls -a /ctx | tr '\\n' ' ' && echo\n`;
  shas = git.commit('app', [
    { files: { 'README': 'root\n', 'app/Dockerfile': dockerfile, 'app/a.txt': `first-${nonce}\n`, 'app/.dockerignore': 'ignored.txt\n', 'app/ignored.txt': 'x\n', 'escape': { link: '/etc' } }, tag: 'v1' },
  ]);
  deniedGit.commit('app', [{ files: { 'Dockerfile': dockerfile, 'a.txt': 'DENIED\n' } }]);
});
after(async () => {
  await cluster?.stop();
  await git?.stop();
  await deniedGit?.stop();
  await outside?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});



const cli = (args: string[], token?: string) => runCli(cluster, work, args, token);

/** The grant file of the one git context fetched so far (fs grants: `<contexts>/tenants/<tenant>/<id hex>`). */
function gitContextGrant(): string {
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
  const all = files(cluster.stateDir);
  const records = all.filter((f) => /\/contexts\/git\/[0-9a-f]{64}$/.test(f));
  assert.equal(records.length, 1, `one git context record: ${records.join(', ')}`);
  const hex = readFileSync(records[0], 'utf8').trim().slice('sha256:'.length);
  const grants = all.filter((f) => new RegExp(`/tenants/[^/]+/${hex}$`).test(f));
  assert.equal(grants.length, 1, `one grant of context ${hex}`);
  return grants[0];
}

const posts = (since: number) => git.requests.slice(since).filter((r) => r.startsWith('POST ')).length;

test('buildyard build <git URL>#ref:dir builds the repository\'s directory with its Dockerfile and .dockerignore; a fetched commit is not fetched again', { skip, timeout: 300_000 }, async () => {
  const url = `http://${outside.web}:${new URL(git.http).port}/app.git#main:app`;
  const before1 = git.requests.length;
  const first = await cli(['build', '--progress', 'plain', url]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`first-${nonce}`));
  assert.match(first.stderr, /\[internal\] load git source http:\/\/203\.0\.113\.\d+:\d+\/app\.git#main:app/);
  // The directory's own files, without its .dockerignore'd file and without .git.
  assert.match(first.stderr, /\. \.\. \.dockerignore Dockerfile a\.txt/);
  assert.doesNotMatch(first.stderr, /ignored\.txt|\.git /);
  assert.ok(posts(before1) >= 2, `the repository was fetched: ${git.requests.slice(before1).join(', ')}`);

  // The same commit again: one ls-remote, no fetch; the step shows CACHED. Reusing it renews
  // the tenant's grant as a sync does (made to look eight days old first), so the context GC
  // by grant age keeps a commit that is still being built.
  const grant = gitContextGrant();
  const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600_000);
  utimesSync(grant, eightDaysAgo, eightDaysAgo);
  const before2 = git.requests.length;
  const again = await cli(['build', '--progress', 'plain', url]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /\[internal\] load git source .*\n(#\d+ .*\n)*?#\d+ CACHED/);
  assert.equal(posts(before2), 1, `only the ref was resolved: ${git.requests.slice(before2).join(', ')}`);
  assert.ok(statSync(grant).mtimeMs > eightDaysAgo.getTime() + 24 * 3600_000, 'the reused git context\'s grant was renewed');

  // A new commit on the branch is fetched and built.
  git.commit('app', [{ files: { 'app/a.txt': `second-${nonce}\n` } }]);
  const moved = await cli(['build', '--progress', 'plain', '--no-cache', url]);
  assert.equal(moved.status, 0, moved.stderr);
  assert.match(moved.stderr, new RegExp(`second-${nonce}`));
  // A tag and a commit sha name the first commit.
  const tagged = await cli(['build', '--progress', 'plain', '--no-cache', url.replace('#main:app', '#v1:app')]);
  assert.equal(tagged.status, 0, tagged.stderr);
  assert.match(tagged.stderr, new RegExp(`first-${nonce}`));
  const bySha = await cli(['build', '--progress', 'plain', '--no-cache', url.replace('#main:app', `#${shas[0]}:app`)]);
  assert.equal(bySha.status, 0, bySha.stderr);
  assert.match(bySha.stderr, new RegExp(`first-${nonce}`));
});

test('buildctl --opt context=<git URL> and docker buildx build <git URL> build through the BuildKit endpoint', { skip: skip || tools.missing || false, timeout: 300_000 }, async () => {
  const url = `http://${outside.web}:${new URL(git.http).port}/app.git#v1:app`;
  const viaBuildctl = await run(tools.paths.buildctl!, ['--addr', addr, 'build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--opt', `context=${url}`, '--no-cache']);
  assert.equal(viaBuildctl.status, 0, viaBuildctl.stderr);
  assert.match(viaBuildctl.stderr, new RegExp(`first-${nonce}`));
  assert.match(viaBuildctl.stderr, /\[internal\] load git source/);
  const env = { ...process.env, BUILDX_CONFIG: join(work, 'buildx') };
  const created = await run(tools.paths['docker-buildx']!, ['create', '--name', 'gitctx', '--driver', 'remote', addr], env);
  assert.equal(created.status, 0, created.stderr);
  const viaBuildx = await run(tools.paths['docker-buildx']!, ['--builder', 'gitctx', 'build', '--progress', 'plain', '--no-cache', url], env);
  assert.equal(viaBuildx.status, 0, viaBuildx.stderr);
  assert.match(viaBuildx.stderr, new RegExp(`first-${nonce}`));
  // A refused address through the endpoint is the same one line.
  const refused = await run(tools.paths.buildctl!, ['--addr', addr, 'build', '--frontend', 'dockerfile.v0', '--opt', `context=http://${outside.metadata}/app.git`]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, new RegExp(`the address ${outside.metadata.replace(/\./g, '\\.')} is not reachable from builds \\(worker\\.egress\\)`));
});

test('a git URL cannot reach Redis, the registry, the worker host, a metadata address, a denied service or a tenant\'s denied range', { skip, timeout: 300_000 }, async () => {
  const refused = async (url: string, address: string, by: string, token?: string) => {
    const r = await cli(['build', '--progress', 'plain', url], token);
    assert.notEqual(r.status, 0, `${url} was fetched: ${r.stderr}`);
    const line = r.stderr.split('\n').find((l) => /not reachable from builds/.test(l));
    assert.ok(line, `a refusal for ${url}: ${r.stderr}`);
    assert.match(line, new RegExp(`the address ${address.replace(/\./g, '\\.')} is not reachable from builds \\(${by.replace(/\./g, '\\.')}\\)`));
    assert.doesNotMatch(r.stderr, /DENIED|WORKER-HOST|METADATA-SERVICE/);
  };
  const redis = new URL(cluster.redis.url);
  await refused(`http://${redis.host}/x.git`, redis.hostname, 'worker.egress');
  await refused(`http://${cluster.registry.host}/x.git`, cluster.registry.host.split(':')[0]!, 'worker.egress');
  await refused(`http://${outside.host.address}:${outside.host.port}/x.git`, outside.host.address, 'worker.egress');
  await refused(`http://${outside.metadata}/latest/x.git`, outside.metadata, 'worker.egress');
  await refused(`git://${redis.host}/x.git`, redis.hostname, 'worker.egress');
  // By name: resolved once, the address vetted, the connection made to that address only.
  await refused(`http://localhost:${redis.port}/x.git`, '127.0.0.1', 'worker.egress');
  const deniedBefore = deniedGit.requests.length;
  await refused(`http://${outside.denied}:${new URL(deniedGit.http).port}/app.git`, outside.denied, 'worker.egress.deny');
  assert.equal(deniedGit.requests.length, deniedBefore, 'the denied server saw no request');
  // A public repository that redirects to the cluster's Redis.
  await refused(`http://${outside.web}:${new URL(git.http).port}/redirect/${redis.host}/x.git`, redis.hostname, 'worker.egress');
  // bob's own deny list covers the outside web address: his build cannot fetch what default's can.
  await refused(`http://${outside.web}:${new URL(git.http).port}/app.git#main:app`, outside.web, 'worker.egress.tenantDeny', cluster.tokens.bob);
  // A subdirectory that is a symlink out of the checkout (to the frontend's /etc).
  const escape = await cli(['build', '--progress', 'plain', `http://${outside.web}:${new URL(git.http).port}/app.git#v1:escape`]);
  assert.notEqual(escape.status, 0);
  assert.match(escape.stderr, /subdirectory "escape" is not a directory of commit/);
  // Transports that read the server's own files or run commands are not git contexts at all.
  const file = await cli(['build', 'file:///etc/x.git']);
  assert.equal(file.status, 2, file.stderr);
});

test('ADD <git URL> dir/ copies the checkout (with --chown, --checksum); ADD of a git URL at the cluster is refused at its line', { skip, timeout: 300_000 }, async () => {
  const base = `http://${outside.web}:${new URL(git.http).port}/app.git`;
  const dir = join(work, 'add-git');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nADD --chown=7:8 --checksum=${shas[0]} ${base}#v1:app /src/\nRUN cat /src/a.txt && stat -c %u:%g /src/a.txt && ls -a /src | tr '\\n' ' ' && echo\n`);
  const ok = await cli(['build', '--progress', 'plain', '--no-cache', dir]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, new RegExp(`first-${nonce}`));
  assert.match(ok.stderr, /\n#\d+ [\d.]+ 7:8\n/);
  assert.doesNotMatch(ok.stderr, /\.git /, 'no .git without --keep-git-dir');
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nADD --checksum=${'0'.repeat(40)} ${base}#v1:app /src/\n`);
  const wrong = await cli(['build', '--progress', 'plain', dir]);
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, new RegExp(`is commit ${shas[0]}, not the expected 0{40}`));
  const redis = new URL(cluster.redis.url);
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nADD http://${redis.host}/x.git /x/\n`);
  const refused = await cli(['build', '--progress', 'plain', dir]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, new RegExp(`ADD http://${redis.host.replace(/\./g, '\\.')}/x\\.git: git http://${redis.host.replace(/\./g, '\\.')}/x\\.git: the address ${redis.hostname.replace(/\./g, '\\.')} is not reachable from builds \\(worker\\.egress\\)`));
  assert.match(refused.stderr, /Dockerfile:2/);
});
