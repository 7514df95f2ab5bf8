// `buildyard bake` through the real CLI against a real cluster: a group of two targets (one for
// two platforms) built at once and pushed, checked in the registry with skopeo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, type Cluster, appCommand, testWorkDir } from '@buildyard/testkit';

let cluster: Cluster;
let work: string;

before(async () => {
  cluster = await startCluster({ workers: 2 });
  work = testWorkDir('buildyard-bake-e2e-');
  mkdirSync(join(work, 'app'));
  writeFileSync(join(work, 'app', 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nARG TARGETARCH\nARG FLAVOR\nRUN echo "$FLAVOR $TARGETARCH" > /built\nCOPY --from=extra greeting /greeting\n');
  mkdirSync(join(work, 'extra'));
  writeFileSync(join(work, 'extra', 'greeting'), 'from a named context\n');
  writeFileSync(join(work, 'docker-bake.hcl'), `
variable "REGISTRY" {}
variable "BASE" {}
variable "VERSION" { default = "1" }
function "image" {
  params = [name]
  result = ["\${REGISTRY}/e2e/bake-\${name}:\${VERSION}"]
}
group "default" { targets = ["app", "tool"] }
target "common" {
  args = { BASE = BASE }
  labels = { "org.opencontainers.image.version" = VERSION }
}
target "app" {
  inherits = ["common"]
  context = "app"
  platforms = ["linux/amd64", "linux/arm64"]
  args = { FLAVOR = upper("full") }
  contexts = { extra = "extra" }
  tags = image("app")
}
target "tool" {
  inherits = ["common"]
  dockerfile-inline = <<-EOT
    ARG BASE
    FROM \${BASE}
    RUN echo tool > /tool
    EOT
  platforms = ["linux/amd64"]
  labels = { "org.example.target" = "tool" }
  tags = image("tool")
}
`);
});
after(async () => { await cluster?.stop(); });

function cli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), {
    cwd: work, encoding: 'utf8', timeout: 300_000,
    env: {
      ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token,
      REGISTRY: cluster.registry.host, BASE: cluster.busybox.reference, ...env,
    },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const skopeo = (...args: string[]) => execFileSync('skopeo', args, { encoding: 'utf8' });

test('bake --push builds both targets of the default group at once and pushes them; --metadata-file has each', () => {
  const meta = join(work, 'meta.json');
  const run = cli(['bake', '--push', '--progress', 'plain', '--metadata-file', meta], { VERSION: '2' });
  assert.equal(run.status, 0, run.stderr);
  // buildx's per-target prefix on every step when several targets build.
  assert.match(run.stderr, /#\d+ \[app \d+\/\d+\] RUN echo "\$FLAVOR \$TARGETARCH" > \/built/);
  assert.match(run.stderr, /#\d+ \[tool \d+\/\d+\] RUN echo tool > \/tool/);
  const step = (target: string) => /#(\d+) \[(\S+) \d+\/\d+\] RUN/g.exec(run.stderr.split('\n').filter((l) => l.includes(`[${target} `)).join('\n'))?.[1];
  assert.notEqual(step('app'), step('tool'), 'steps are numbered across the targets, as one buildx printer does');
  assert.match(run.stderr, /^\[app\] pushed .*\/e2e\/bake-app@sha256:/m, 'each target\'s summary says whose it is');
  assert.match(run.stderr, /^\[tool\] pushed .*\/e2e\/bake-tool@sha256:/m);

  const app = `${cluster.registry.host}/e2e/bake-app:2`;
  const index = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${app}`));
  // Attestation manifests (unknown/unknown, as BuildKit attaches provenance) aside, one per platform.
  const archs = index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).filter((a: string) => a !== 'unknown');
  assert.deepEqual(archs.sort(), ['amd64', 'arm64']);
  for (const arch of ['amd64', 'arm64']) {
    const layout = join(work, `app-${arch}`);
    skopeo('copy', '--src-tls-verify=false', '--override-arch', arch, `docker://${app}`, `oci:${layout}:x`);
    const bundle = join(work, `bundle-${arch}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:x`, bundle], { stdio: 'pipe' });
    assert.equal(readFileSync(join(bundle, 'rootfs/built'), 'utf8'), `FULL ${arch}\n`, 'args from inherits and the target, the platform');
    assert.equal(readFileSync(join(bundle, 'rootfs/greeting'), 'utf8'), 'from a named context\n', 'contexts reach the build as named contexts');
    const config = JSON.parse(skopeo('inspect', '--config', '--tls-verify=false', '--override-arch', arch, `docker://${app}`));
    assert.equal(config.config.Labels['org.opencontainers.image.version'], '2', 'the variable from the environment');
  }

  const tool = `${cluster.registry.host}/e2e/bake-tool:2`;
  const toolInfo = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${tool}`));
  assert.equal(toolInfo.Architecture, 'amd64');
  assert.equal(toolInfo.Labels['org.example.target'], 'tool');
  assert.equal(toolInfo.Labels['org.opencontainers.image.version'], '2', 'labels merge over inherits');

  const metadata = JSON.parse(readFileSync(meta, 'utf8'));
  assert.deepEqual(Object.keys(metadata).sort(), ['app', 'tool']);
  const appDigest = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${app}`)).Digest;
  assert.equal(metadata.app['containerimage.digest'], appDigest);
  assert.equal(metadata.tool['containerimage.digest'], toolInfo.Digest);
});

test('bake --print shows the resolved targets; a bad file or target exits 2 with one line', () => {
  const printed = cli(['bake', '--print', 'tool', '--set', 'tool.platform=linux/arm64']);
  assert.equal(printed.status, 0, printed.stderr);
  const json = JSON.parse(printed.stdout);
  assert.deepEqual(json.group, { default: { targets: ['tool'] } });
  assert.deepEqual(json.target.tool.platforms, ['linux/arm64']);
  assert.deepEqual(json.target.tool.tags, [`${cluster.registry.host}/e2e/bake-tool:1`]);

  const missing = cli(['bake', 'nosuch']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^ERROR: failed to find target nosuch/m);
  writeFileSync(join(work, 'bad.hcl'), 'target "x" {\n  tags = [nope]\n}\n');
  const bad = cli(['bake', '-f', 'bad.hcl', 'x']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /^ERROR: bad\.hcl:2: unknown variable "nope"/);
});

test('a failing target fails the bake with exit 1 and its error marked with its name', () => {
  writeFileSync(join(work, 'fail.hcl'), `
variable "BASE" {}
group "default" { targets = ["good", "bad"] }
target "good" {
  dockerfile-inline = "ARG BASE\\nFROM \${BASE}\\nRUN echo good > /good\\n"
  args = { BASE = BASE }
}
target "bad" {
  dockerfile-inline = "ARG BASE\\nFROM \${BASE}\\nRUN echo failing-on-purpose && exit 3\\n"
  args = { BASE = BASE }
}
`);
  const run = cli(['bake', '-f', 'fail.hcl', '--progress', 'plain']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /#\d+ \[bad \d+\/\d+\] RUN echo failing-on-purpose && exit 3/);
  assert.match(run.stderr, /^\[bad\] ERROR: .*exit code: 3/m, 'the error says which target failed');
});

test('a target:X context builds X first and hands its image to the dependent on every platform (through an OCI layout); X, pulled in only by the link, is not pushed', () => {
  const nonce = `${process.pid}-${Date.now()}`;
  writeFileSync(join(work, 'linked.hcl'), `
variable "BASE" {}
variable "REGISTRY" {}
target "base" {
  dockerfile-inline = "ARG BASE\\nFROM \${BASE}\\nRUN echo base-${nonce} > /base\\n"
  args = { BASE = BASE }
  platforms = ["linux/amd64", "linux/arm64"]
  tags = ["\${REGISTRY}/e2e/bake-linked-base:1"]
}
target "app" {
  dockerfile-inline = "FROM base\\nRUN cat /base && uname -m\\n"
  contexts = { base = "target:base" }
  platforms = ["linux/amd64", "linux/arm64"]
  tags = ["\${REGISTRY}/e2e/bake-linked-app:1"]
}
`);
  const run = cli(['bake', '-f', 'linked.hcl', '--progress', 'plain', '--push', 'app']);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr.match(new RegExp(`#\\d+ [\\d.]+ base-${nonce}`, 'g'))?.length, 2, run.stderr);
  for (const arch of ['x86_64', 'aarch64']) assert.match(run.stderr, new RegExp(`#\\d+ [\\d.]+ ${arch}`));
  const pushed = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${cluster.registry.host}/e2e/bake-linked-app:1`));
  assert.equal(pushed.manifests.filter((m: { platform: { os: string } }) => m.platform.os === 'linux').length, 2);
  const base = spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${cluster.registry.host}/e2e/bake-linked-base:1`], { encoding: 'utf8' });
  assert.notEqual(base.status, 0, 'the linked target has no outputs of its own');
});
