import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExecVertex, FileVertex, ImageConfigFile, StagePlan } from '@buildyard/graph';
import { parse, planBuild, DockerfileError, type PlanOptions, type ResolvedImage } from './index.js';

const D = (c: string) => 'sha256:' + c.repeat(64);

function resolver(images: Record<string, ImageConfigFile> = {}, calls: string[] = []) {
  return async (ref: string, platform: string): Promise<ResolvedImage> => {
    calls.push(`${ref} ${platform}`);
    const name = ref.split(':')[0];
    const config = images[ref] ?? images[name] ?? { config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] } };
    const digest = D(platform.includes('arm64') ? 'b' : 'a');
    return { ref: `docker.io/library/${ref}@${digest}`, digest, config };
  };
}

async function plan(text: string, opts: Partial<PlanOptions> = {}) {
  return planBuild(parse(text), { platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', resolveImage: resolver(), ...opts });
}

function target(p: Awaited<ReturnType<typeof plan>>, i = 0): StagePlan {
  const pp = p.platforms[i];
  return pp.stages.find((s) => s.id === pp.target)!;
}

async function rejects(text: string, line: number, re: RegExp, opts: Partial<PlanOptions> = {}) {
  await assert.rejects(plan(text, opts), (e: unknown) => {
    assert.ok(e instanceof DockerfileError, String(e));
    assert.equal(e.line, line, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('config: ENV/WORKDIR/USER/EXPOSE/VOLUME/LABEL/STOPSIGNAL/HEALTHCHECK/SHELL/CMD/ENTRYPOINT/ONBUILD', async () => {
  const p = await plan(`FROM scratch
ENV A=1 B="two words"
ENV C=$A-\${B}
WORKDIR app
WORKDIR sub
USER 1000:1000
EXPOSE 80 53/udp 8000-8001
VOLUME /data ["/x"]
LABEL org.x="y" "k 2"=v
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://localhost/
SHELL ["/bin/bash", "-eu", "-c"]
CMD echo hi
ENTRYPOINT ["/init"]
ONBUILD RUN make
MAINTAINER someone
`);
  const c = target(p).config;
  assert.deepEqual(c.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1', 'B=two words', 'C=1-two words']);
  assert.equal(c.WorkingDir, '/app/sub');
  assert.equal(c.User, '1000:1000');
  assert.deepEqual(Object.keys(c.ExposedPorts!), ['80/tcp', '53/udp', '8000/tcp', '8001/tcp']);
  assert.deepEqual(Object.keys(c.Volumes!), ['/data', '["/x"]'].slice(0, 1).concat(Object.keys(c.Volumes!).slice(1)));
  assert.deepEqual(c.Labels, { 'org.x': 'y', 'k 2': 'v' });
  assert.equal(c.StopSignal, 'SIGTERM');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'curl -f http://localhost/'], Interval: 30e9, Timeout: 90e9, Retries: 3 });
  assert.deepEqual(c.Shell, ['/bin/bash', '-eu', '-c']);
  assert.deepEqual(c.Cmd, ['/bin/bash', '-eu', '-c', 'echo hi'], 'shell form wrapped by SHELL');
  assert.deepEqual(c.Entrypoint, ['/init']);
  assert.deepEqual(c.OnBuild, ['RUN make']);
  assert.equal(target(p).author, 'someone');
  const h = target(p).history;
  assert.equal(h[0].created_by, 'ENV A=1 B=two words');
  assert.equal(h[0].empty_layer, true);
  assert.equal(h.find((x) => x.created_by?.startsWith('WORKDIR'))?.empty_layer, undefined);
  assert.ok(h.some((x) => x.created_by === 'CMD ["/bin/bash" "-eu" "-c" "echo hi"]'));
  const mk = target(p).vertices.map((v) => (v as FileVertex).actions[0]);
  assert.deepEqual(mk, [{ op: 'mkdir', path: '/app', mode: 0o755 }, { op: 'mkdir', path: '/app/sub', mode: 0o755 }]);
});

test('ENTRYPOINT resets an inherited CMD; CMD in the same stage survives', async () => {
  const images = { base: { config: { Cmd: ['sh'], Env: ['PATH=/bin'] } } };
  let p = await plan('FROM base\nENTRYPOINT ["x"]\n', { resolveImage: resolver(images) });
  assert.equal(target(p).config.Cmd, undefined);
  p = await plan('FROM base\nCMD ["y"]\nENTRYPOINT ["x"]\n', { resolveImage: resolver(images) });
  assert.deepEqual(target(p).config.Cmd, ['y']);
  assert.deepEqual(target(p).config.Env, ['PATH=/bin'], 'image PATH kept');
  p = await plan('FROM base\nHEALTHCHECK NONE\n', { resolveImage: resolver(images) });
  assert.deepEqual(target(p).config.Healthcheck, { Test: ['NONE'] });
});

test('global ARGs in FROM, bare redeclaration in a stage, build-arg overrides, ENV beats ARG', async () => {
  const calls: string[] = [];
  const text = `ARG TAG=3.19
ARG IMG=alpine:\${TAG}
FROM \${IMG}
ARG TAG
ARG LOCAL=def
ARG OVER=def
ENV OVER=fromenv
RUN echo $TAG $LOCAL $OVER
`;
  const p = await plan(text, { resolveImage: resolver({}, calls), buildArgs: { TAG: '3.20', LOCAL: 'cli', UNUSED: 'x' } });
  assert.deepEqual(calls, ['alpine:3.20 linux/amd64']);
  const run = target(p).vertices[0] as ExecVertex;
  assert.deepEqual(run.args, ['/bin/sh', '-c', 'echo $TAG $LOCAL $OVER']);
  assert.deepEqual(run.env.slice(1), ['TAG=3.20', 'LOCAL=cli', 'OVER=fromenv'], 'llb EnvList order: the latest write of a name comes last');
  assert.match(p.warnings.map((w) => w.message).join('\n'), /\[UNUSED\] were not consumed/);
  assert.equal(target(p).history.at(-1)!.created_by, 'RUN |3 TAG=3.20 LOCAL=cli OVER=fromenv /bin/sh -c echo $TAG $LOCAL $OVER # buildkit');
  await rejects('ARG IMG\nFROM ${IMG}\n', 2, /base name \(\$\{IMG\}\) should not be blank/);
});

test('a global ARG without a value keeps the earlier or built-in value (current BuildKit buildMetaArgs)', async () => {
  const calls: string[] = [];
  const p = await plan('ARG BUILDPLATFORM\nARG V=1\nARG V\nARG TARGETARCH\nFROM --platform=$BUILDPLATFORM img:$V\nARG V TARGETARCH\nRUN echo $V $TARGETARCH\n', { platforms: ['linux/arm64'], resolveImage: resolver({}, calls) });
  assert.deepEqual(calls, ['img:1 linux/amd64']);
  assert.equal(target(p).history.at(-2)!.created_by, 'ARG V=1 TARGETARCH=arm64');
  assert.deepEqual((target(p).vertices[0] as ExecVertex).env.slice(1), ['V=1', 'TARGETARCH=arm64']);
});

test('platform args, --platform and per-platform graphs with normalised platforms', async () => {
  const calls: string[] = [];
  const text = `FROM --platform=$BUILDPLATFORM golang AS build
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
RUN echo $TARGETARCH
FROM alpine
COPY --from=build /out /out
`;
  const p = await plan(text, { platforms: ['aarch64', 'linux/amd64', 'linux/arm64/v8'], buildPlatform: 'x86_64', resolveImage: resolver({}, calls) });
  assert.deepEqual(p.platforms.map((x) => x.platform), ['linux/arm64', 'linux/amd64']);
  const arm = p.platforms[0];
  const build = arm.stages[0];
  assert.equal(build.platform, 'linux/amd64');
  const run = build.vertices[0] as ExecVertex;
  assert.ok(run.env.includes('TARGETPLATFORM=linux/arm64') && run.env.includes('TARGETARCH=arm64') && run.env.includes('TARGETOS=linux') && run.env.includes('TARGETVARIANT='));
  assert.ok(run.env.includes('BUILDPLATFORM=linux/amd64') && run.env.includes('BUILDARCH=amd64'));
  assert.deepEqual([...new Set(calls)].sort(), ['alpine linux/amd64', 'alpine linux/arm64', 'golang linux/amd64']);
  const amdRun = p.platforms[1].stages[0].vertices[0];
  assert.notEqual(run.cacheKey, amdRun.cacheKey, 'TARGETARCH differs, so does the key');
  assert.equal(arm.stages[1].platform, 'linux/arm64');
  await assert.rejects(plan('FROM a\n', { platforms: ['linux/amd64/v9/x'] }), /invalid platform "linux\/amd64\/v9\/x"/);
});

test('proxy args reach RUN env but not cache key or history', async () => {
  const text = 'FROM scratch\nRUN make\n';
  const a = await plan(text, { buildArgs: { HTTP_PROXY: 'http://127.0.0.1:3128' } });
  const b = await plan(text);
  const ra = target(a).vertices[0] as ExecVertex;
  const rb = target(b).vertices[0] as ExecVertex;
  assert.ok(ra.env.includes('HTTP_PROXY=http://127.0.0.1:3128'));
  assert.equal(ra.cacheKey, rb.cacheKey);
  assert.equal(ra.digest, rb.digest);
  assert.equal(target(a).history.at(-1)!.created_by, 'RUN /bin/sh -c make # buildkit');
  assert.equal(a.warnings.length, 0);
});

test('stages by name (case-insensitive) and index; --target plans only what it needs', async () => {
  const text = `FROM alpine AS Base
RUN echo base
FROM base AS build
RUN make
FROM alpine AS unrelated
RUN sleep 1
FROM alpine AS final
COPY --from=BUILD /out /a
COPY --from=0 /etc/os-release /b
COPY --from=busybox:latest /bin/busybox /c
RUN --mount=type=bind,from=base,source=/etc,target=/mnt cat /mnt/os-release
`;
  const p = await plan(text);
  const pp = p.platforms[0];
  assert.deepEqual(pp.stages.map((s) => s.name), ['base', 'build', 'final']);
  const final = target(p);
  assert.deepEqual(final.dependsOn, ['linux/amd64#1', 'linux/amd64#0']);
  const build = pp.stages[1];
  assert.deepEqual(build.base, { kind: 'stage', stageId: 'linux/amd64#0' });
  assert.equal(build.history.length, 1, 'only the stage\'s own entries: the solver adds its base stage\'s result history');
  const copies = final.vertices.slice(0, 3).map((v) => (v as FileVertex).actions[0]);
  assert.deepEqual(copies.map((a) => (a.op === 'copy' ? a.from : null)), [
    { kind: 'stage', stageId: 'linux/amd64#1' },
    { kind: 'stage', stageId: 'linux/amd64#0' },
    { kind: 'image', ref: `docker.io/library/busybox:latest@${D('a')}`, digest: D('a') },
  ]);
  const run = final.vertices[3] as ExecVertex;
  assert.deepEqual(run.mounts, [{ type: 'bind', target: '/mnt', source: '/etc', from: { kind: 'stage', stageId: 'linux/amd64#0' }, rw: false }]);
  assert.equal(final.vertices[0].name, '[final 2/5] COPY --from=BUILD /out /a');
  const only = await plan(text, { target: 'build' });
  assert.deepEqual(only.platforms[0].stages.map((s) => s.name), ['base', 'build']);
  await rejects(text, 0, /target stage "buidl" could not be found \(did you mean build\?\)/, { target: 'buidl' });
});

test('forward references, unknown indexes and self references are rejected', async () => {
  await rejects('FROM alpine AS a\nCOPY --from=b /x /y\nFROM alpine AS b\nFROM a\n', 2, /cannot copy from stage "b", it needs to be defined before current stage "a"/);
  await rejects('FROM alpine AS a\nCOPY --from=5 /x /y\n', 2, /invalid stage index 5/);
  await rejects('FROM alpine AS a\nCOPY --from=a /x /y\n', 2, /circular dependency/);
  await rejects('FROM alpine AS a\nCOPY --from=1 /x /y\nFROM alpine\nFROM a\n', 2, /cannot copy from stage "1"/);
  await rejects('FROM alpine AS a\nCOPY --from=b /x /y\nFROM alpine AS b\nCOPY --from=a /x /y\n', 4, /circular dependency detected on stage: a/);
  const own = await plan('FROM alpine AS alpine\nRUN x\n');
  assert.equal(target(own).base.kind, 'image', 'FROM x AS x uses the image');
});

test('WORKDIR keeps an absolute path as written and joins a relative one (system.NormalizeWorkdir); `/` makes no layer', async () => {
  const p = await plan('FROM scratch\nWORKDIR /app/\nWORKDIR rel/\nWORKDIR /a//b/.\nWORKDIR //srv\nWORKDIR /../x/./y/..\nWORKDIR /\nRUN pwd\n');
  const st = target(p);
  assert.deepEqual(st.history.map((h) => [h.created_by, h.empty_layer ?? false]).slice(0, 6), [
    ['WORKDIR /app/', false], ['WORKDIR /app/rel', false], ['WORKDIR /a//b/.', false], ['WORKDIR //srv', false], ['WORKDIR /../x/./y/..', false], ['WORKDIR /', true],
  ]);
  assert.deepEqual(st.vertices.map((v) => (v.kind === 'file' && v.actions[0].op === 'mkdir' ? v.actions[0].path : v.kind)), ['/app/', '/app/rel', '/a//b/.', '//srv', '/../x/./y/..', 'exec']);
  assert.equal(st.config.WorkingDir, '/');
  assert.equal((st.vertices[5] as ExecVertex).cwd, '/');
});

test('ONBUILD keeps a trigger\'s heredocs (parseOnBuild), so the child stage runs them', async () => {
  const p = await plan('FROM scratch AS p\nONBUILD RUN <<EOF\necho hi > /h\nEOF\nONBUILD COPY <<-A /d/\n\ta\n\tA\nFROM p\n');
  const [parent, child] = p.platforms[0].stages;
  assert.deepEqual(parent.config.OnBuild, ['RUN <<EOF\necho hi > /h\nEOF', 'COPY <<-A /d/\n\ta\nA']);
  assert.deepEqual((child.vertices[0] as ExecVertex).args, ['/bin/sh', '-c', 'echo hi > /h\n']);
  assert.equal(child.vertices[1].kind, 'file');
});

test('ONBUILD triggers fire when an image or a stage is used as base', async () => {
  const images = { trig: { config: { OnBuild: ['RUN echo from-image', 'ENV T=1'] } } };
  const p = await plan('FROM trig AS a\nRUN mine\nONBUILD RUN echo from-stage\nFROM a\n', { resolveImage: resolver(images) });
  const [a, b] = p.platforms[0].stages;
  assert.deepEqual(a.vertices.map((v) => (v as ExecVertex).args.at(-1)), ['echo from-image', 'mine']);
  assert.ok(a.config.Env!.includes('T=1'));
  assert.deepEqual(a.config.OnBuild, ['RUN echo from-stage'], 'base triggers consumed, own kept');
  assert.deepEqual(b.vertices.map((v) => (v as ExecVertex).args.at(-1)), ['echo from-stage']);
  assert.equal(b.config.OnBuild, undefined);
});

test('RUN flags: mounts of every type, network, security, heredocs', async () => {
  const p = await plan(`FROM alpine
WORKDIR /w
RUN --mount=type=cache,target=.cache,sharing=locked,mode=0700,uid=1 \\
    --mount=type=secret,id=npmrc,required \\
    --mount=type=secret,id=tok,env=TOKEN \\
    --mount=type=ssh \\
    --mount=type=tmpfs,target=/tmp,size=64m \\
    --network=none --security=insecure make
RUN <<EOF
echo one
EOF
RUN <<EOF
#!/usr/bin/env python3
print(1)
EOF
RUN cat <<A > /f
x
A
`);
  const [, run, h1, h2, h3] = target(p).vertices as ExecVertex[];
  assert.equal(run.network, 'none');
  assert.equal(run.security, 'insecure');
  assert.deepEqual(run.mounts, [
    { type: 'cache', target: '/w/.cache', id: '.cache', sharing: 'locked', uid: 1, gid: 0, mode: 0o700, readonly: false },
    { type: 'secret', id: 'npmrc', target: '/run/secrets/npmrc', required: true, mode: 0o400, uid: 0, gid: 0 },
    { type: 'secret', id: 'tok', env: 'TOKEN', required: false, mode: 0o400, uid: 0, gid: 0 },
    { type: 'ssh', id: '', target: '/run/buildkit/ssh_agent.0', required: false, mode: 0o600, uid: 0, gid: 0 },
    { type: 'tmpfs', target: '/tmp', size: 64 * 1024 * 1024 },
  ]);
  assert.deepEqual(h1.args, ['/bin/sh', '-c', 'echo one\n']);
  assert.deepEqual(h2.args, ['/bin/sh', '-c', '/dev/pipes/EOF']);
  assert.deepEqual(h2.heredocs, [{ name: 'EOF', content: '#!/usr/bin/env python3\nprint(1)\n', path: '/dev/pipes/EOF', mode: 0o755 }]);
  assert.deepEqual(h3.args, ['/bin/sh', '-c', 'cat <<A > /f\nx\nA']);
  // Relative secret and ssh targets are the step's WORKDIR's, as BuildKit's executor joins them with the cwd.
  const relative = await plan('FROM alpine\nWORKDIR /w\nRUN --mount=type=secret,id=s,target=rel/s --mount=type=ssh,target=agent.sock --mount=type=cache,target=/c,ro cat rel/s\n');
  const [, relRun] = target(relative).vertices as ExecVertex[];
  assert.deepEqual(relRun.mounts.map((m) => [m.type, 'target' in m ? m.target : '']), [['secret', '/w/rel/s'], ['ssh', '/w/agent.sock'], ['cache', '/c']]);
  assert.equal(relRun.mounts.find((m) => m.type === 'cache')?.readonly, true);
  await rejects('FROM a\nRUN --network=bridge x\n', 2, /invalid network mode "bridge"/);
  await rejects('FROM a\nRUN --mount=type=cache x\n', 2, /invalid mount target "\/"/);
  await rejects('FROM a\nRUN --mount=type=bind,target=/x,bogus=1 x\n', 2, /unexpected key 'bogus'/);
});

test('a context entry\'s extended attributes are part of the COPY\'s key (as BuildKit\'s checksum), for the whole context and for a selection; none keeps the key', async () => {
  const entries = [
    { path: 'a', mode: 0o40755, size: 0, digest: '' },
    { path: 'a/f', mode: 0o100644, size: 1, digest: D('1') },
    { path: 'g', mode: 0o100644, size: 1, digest: D('2') },
  ];
  // Each COPY first in its stage, so its key is its own sources' alone.
  const keys = async (list: typeof entries) => Promise.all(['COPY . /all/', 'COPY a /sel/', 'COPY g /g'].map(async (copy) =>
    target(await plan(`FROM alpine\n${copy}\n`, { context: { entries: list } })).vertices[0].cacheKey));
  const withXattr = (value: string) => entries.map((e) => (e.path === 'a/f' ? { ...e, xattrs: [['user.v', value]] as [string, string][] } : e));
  const before = await keys(entries);
  const tagged = await keys(withXattr('MQ=='));
  assert.notEqual(tagged[0], before[0], 'the whole context');
  assert.notEqual(tagged[1], before[1], 'a selection holding the file');
  assert.equal(tagged[2], before[2], 'a selection without it');
  const retagged = await keys(withXattr('Mg=='));
  assert.notEqual(retagged[0], tagged[0]);
  assert.notEqual(retagged[1], tagged[1]);
  assert.deepEqual(await keys(entries.map((e) => ({ ...e, xattrs: undefined }))), before);
});

test('COPY/ADD: dest resolution, flags, heredoc files, URLs and git, context content digests', async () => {
  const entries = [
    { path: 'src', mode: 0o40755, size: 0, digest: '' },
    { path: 'src/a.ts', mode: 0o100644, size: 1, digest: D('1') },
    { path: 'src/b.md', mode: 0o100644, size: 1, digest: D('2') },
    { path: 'go.mod', mode: 0o100644, size: 1, digest: D('3') },
    { path: 'x.txt', mode: 0o100644, size: 1, digest: D('4') },
  ];
  const text = `FROM alpine
WORKDIR /app
ARG OWNER=1:2
COPY --chown=$OWNER --chmod=640 --link --exclude=*.md src ./src/
COPY go.mod *.txt ./
COPY <<EOF <<-CONF /etc/
hello $OWNER "q"
EOF
\tk=v
\tCONF
ADD --checksum=sha256:abc https://example.com/a.tar.gz /dl/
ADD --keep-git-dir https://github.com/moby/buildkit.git#v0.12:docs /bk
ADD --unpack=true local.tar /x/
COPY --parents src/a.ts /p/
`;
  const ctx = { entries: [...entries, { path: 'local.tar', mode: 0o100644, size: 1, digest: D('5') }] };
  const p = await plan(text.replace('--checksum=sha256:abc ', ''), { context: ctx });
  const vs = target(p).vertices as FileVertex[];
  const c1 = vs[1].actions[0];
  assert.equal(c1.op, 'copy');
  if (c1.op === 'copy') {
    assert.equal(c1.dest, '/app/src/');
    assert.equal(c1.chown, '1:2');
    assert.equal(c1.chmod, '640');
    assert.equal(c1.link, true);
    assert.deepEqual(c1.exclude, ['*.md']);
    assert.deepEqual(c1.contentDigests!.map((d) => d.path), ['src', 'src/a.ts']);
  }
  const c2 = vs[2].actions[0];
  if (c2.op === 'copy') assert.deepEqual(c2.contentDigests!.map((d) => d.path), ['go.mod', 'x.txt']);
  assert.deepEqual(vs[3].actions, [
    // The destination as written and the heredoc's name: the solver's mkfile joins them when the destination is a directory.
    { op: 'mkfile', path: '/etc/', name: 'EOF', content: 'hello 1:2 "q"\n', mode: 0o644 },
    { op: 'mkfile', path: '/etc/', name: 'CONF', content: 'k=v\n', mode: 0o644 },
  ]);
  assert.deepEqual(vs[4].actions, [{ op: 'addUrl', url: 'https://example.com/a.tar.gz', dest: '/dl/', link: false }]);
  assert.deepEqual(vs[5].actions, [{ op: 'addGit', url: 'https://github.com/moby/buildkit.git', ref: 'v0.12', subdir: 'docs', keepGitDir: true, dest: '/bk', link: false }]);
  const add = vs[6].actions[0];
  assert.ok(add.op === 'copy' && add.isAdd && add.unpack === true);
  const par = vs[7].actions[0];
  assert.ok(par.op === 'copy' && par.parents);
  assert.equal(target(p).history[2].created_by, 'COPY --chown=1:2 --chmod=640 src ./src/ # buildkit');

  // Changing a file the COPY reads changes its key; changing an unrelated file does not.
  const p2 = await plan(text.replace('--checksum=sha256:abc ', ''), { context: { entries: ctx.entries.map((e) => (e.path === 'go.mod' ? { ...e, digest: D('9') } : e)) } });
  const v2 = target(p2).vertices;
  assert.equal(v2[1].cacheKey, vs[1].cacheKey);
  assert.notEqual(v2[2].cacheKey, vs[2].cacheKey);
  assert.equal(v2[2].digest, vs[2].digest, 'definition unchanged');
  const p3 = await plan(text.replace('--checksum=sha256:abc ', ''), { context: { entries: ctx.entries.map((e) => (e.path === 'src/b.md' ? { ...e, digest: D('8') } : e)) } });
  assert.equal(target(p3).vertices[1].cacheKey, vs[1].cacheKey, 'excluded file does not affect the key');

  const withSum = await plan(text, { context: ctx });
  const dl = (target(withSum).vertices[4] as FileVertex).actions[0];
  assert.ok(dl.op === 'addUrl' && dl.checksum === 'sha256:abc');
  await rejects('FROM a\nCOPY missing /x\n', 2, /failed to calculate checksum of ref \w+: "\/missing": not found/, { context: ctx });
  // contenthash follows a link in the last component itself and names where it points.
  const links = { entries: [...ctx.entries, { path: 'dangling', mode: 0o120777, size: 0, digest: '', linkTarget: 'nowhere' }, { path: 'out', mode: 0o120777, size: 0, digest: '', linkTarget: '../../../etc/hostname' }] };
  await rejects('FROM a\nCOPY dangling /x\n', 2, /failed to calculate checksum of ref \w+: "\/nowhere": not found/, { context: links });
  await rejects('FROM a\nCOPY out /x\n', 2, /failed to calculate checksum of ref \w+: "\/etc\/hostname": not found/, { context: links });
  const fromEmpty = target(await plan('FROM a\nCOPY --from= x.txt /x\n', { context: ctx })).vertices[0] as FileVertex;
  assert.deepEqual(fromEmpty.inputs, [], 'an empty --from is the build context');
  await rejects('FROM a\nRUN []\n', 2, /failed to marshal LLB definition: arguments are required/);
  // BuildKit finds an empty argv only when it marshals the converted definition: later errors come first.
  await rejects('FROM a\nRUN []\nCOPY ${X:?need_X} /x\n', 3, /failed to process .*X: need_X/);
  assert.throws(() => parse('FROM a\nCOPY --checksum=sha256:x a /x\n'), /unknown flag: --checksum/);
  await rejects('FROM a\nADD --checksum=sha256:x a /x\n', 2, /checksum requires HTTP\(S\) or Git sources/);
  await rejects('FROM a\nCOPY --chmod=99z a /x\n', 2, /invalid chmod parameter: '99z'. it should be octal string and between 0 and 07777/);
  await rejects('FROM a\nCOPY ${X:?need_X} /x\n', 2, /failed to process .*X: need_X/);
  await rejects('FROM a\nENV A="unterminated\n', 2, /matching double-quote/);
});

test('cache keys chain through parents and stage inputs; labels option applies to the target', async () => {
  const text = 'FROM alpine AS a\nRUN one\nFROM alpine\nRUN two\nCOPY --from=a /x /y\n';
  const p1 = await plan(text, { labels: { 'org.opencontainers.image.source': 'x' } });
  const p2 = await plan(text.replace('RUN one', 'RUN uno'));
  const [a1, f1] = p1.platforms[0].stages;
  const [a2, f2] = p2.platforms[0].stages;
  assert.notEqual(a1.cacheKey, a2.cacheKey);
  assert.equal(f1.vertices[0].cacheKey, f2.vertices[0].cacheKey, 'RUN two does not depend on stage a');
  assert.equal(f1.vertices[1].digest, f2.vertices[1].digest);
  assert.notEqual(f1.vertices[1].cacheKey, f2.vertices[1].cacheKey, 'COPY --from=a depends on a');
  assert.equal(f1.cacheKey, f1.vertices[1].cacheKey);
  assert.deepEqual(f1.config.Labels, { 'org.opencontainers.image.source': 'x' });
  assert.equal(a1.config.Labels, undefined);
  assert.deepEqual(JSON.parse(JSON.stringify(p1)), p1, 'plain JSON data');
  const nc = await plan(text, { noCache: true });
  assert.equal(nc.platforms[0].stages[0].noCache, true);
  // --no-cache-filter: the stages it names (any case), as dockerfile2llb's ignoreCache; an unnamed stage never matches.
  const filtered = await plan(text, { noCacheFilter: ['A', 'stage-1', '1'] });
  assert.deepEqual(filtered.platforms[0].stages.map((s) => s.noCache), [true, false]);
});

test('resolver failures become actionable errors with the FROM line', async () => {
  await rejects('FROM scratch\nFROM nope\n', 2, /failed to resolve image "nope" for linux\/amd64: not found/, {
    resolveImage: async () => {
      throw new Error('not found');
    },
  });
});

test('hostile words give short errors: deep nesting and huge references are quoted only in part', async () => {
  const depth = 20_000;
  const word = '${A:-'.repeat(depth) + 'x' + '}'.repeat(depth);
  await assert.rejects(plan(`FROM busybox\nARG A\nENV B=${word}\n`), (e: unknown) => {
    assert.ok(e instanceof DockerfileError && e.line === 3, String(e).slice(0, 200));
    assert.match(e.message, /nested too deeply/);
    assert.ok(e.message.length < 300, `message is ${e.message.length} chars`);
    return true;
  });
  const huge = 'a'.repeat(100_000);
  await assert.rejects(plan(`FROM ${huge}\n`, { resolveImage: async (ref) => { throw new Error(`bad reference ${ref}`); } }), (e: unknown) => {
    assert.ok(e instanceof DockerfileError && e.line === 1);
    assert.match(e.message, /failed to resolve image "a{80}… \(100000 chars\)"/);
    assert.ok(e.message.length < 600, `message is ${e.message.length} chars`);
    return true;
  });
});

test('ADD <url> without --checksum makes its key and every later one provisional, across stages; with --checksum it does not', async () => {
  const p = await plan(`FROM scratch AS fetched
RUN true
ADD http://example.com/a.txt /a.txt
RUN true
FROM scratch AS pinned
ADD --checksum=sha256:${'0'.repeat(64)} http://example.com/b.txt /b.txt
RUN true
FROM fetched AS child
RUN true
FROM pinned
COPY --from=pinned /b.txt /b
RUN true
COPY --from=child /a.txt /a
RUN true
`);
  const stages = p.platforms[0].stages;
  const flags = (name: string) => stages.find((s) => s.name === name)!.vertices.map((v) => v.provisionalKey === true);
  assert.deepEqual(flags('fetched'), [false, true, true]);
  assert.deepEqual(flags('pinned'), [false, false]);
  assert.deepEqual(flags('child'), [true]);
  assert.deepEqual(target(p).vertices.map((v) => v.provisionalKey === true), [false, false, true, true]);
});

test('the epoch of rewrite-timestamp reaches every stage (layer mtimes are clamped to it) and keys its layers apart; without it layers are untouched', async () => {
  const text = 'FROM busybox AS a\nRUN true\nFROM a AS b\nCOPY --from=a /x /y\nFROM scratch\nCOPY --from=b /y /z\n';
  const epoch = (value: string) => ({ buildArgs: { SOURCE_DATE_EPOCH: value, UNUSED: 'x' }, layerEpoch: Number(value) });
  const plain = (await plan(text)).platforms[0].stages;
  const pinnedPlan = await plan(text, epoch('1600000000'));
  const pinned = pinnedPlan.platforms[0].stages;
  assert.deepEqual(pinnedPlan.warnings.map((w) => w.message), ['one or more build-args [UNUSED] were not consumed'], 'the build consumes SOURCE_DATE_EPOCH itself');
  assert.deepEqual(plain.map((s) => s.sourceDateEpoch), [undefined, undefined, undefined]);
  assert.deepEqual(pinned.map((s) => s.sourceDateEpoch), [1600000000, 1600000000, 1600000000]);
  for (const [i, s] of pinned.entries()) {
    assert.deepEqual(s.vertices.map((v) => v.digest), plain[i]!.vertices.map((v) => v.digest), 'same steps');
    for (const [j, v] of s.vertices.entries()) assert.notEqual(v.cacheKey, plain[i]!.vertices[j]!.cacheKey);
  }
  const other = (await plan(text, epoch('1600000001'))).platforms[0].stages;
  assert.notEqual(other[0]!.cacheKey, pinned[0]!.cacheKey);
  // BuildKit without rewrite-timestamp: SOURCE_DATE_EPOCH pins the image's times only, so the
  // layers (and their keys) are those of a build without it.
  const unclamped = (await plan(text, { buildArgs: { SOURCE_DATE_EPOCH: '1600000000' } })).platforms[0].stages;
  assert.deepEqual(unclamped.map((s) => s.sourceDateEpoch), [undefined, undefined, undefined]);
  assert.deepEqual(unclamped.map((s) => s.cacheKey), plain.map((s) => s.cacheKey));
});

test('FROM --platform takes any os/arch (containerd Parse); the resolver\'s no-match error is passed on in BuildKit\'s words', async () => {
  const calls: string[] = [];
  const noMatch = async (ref: string, platform: string): Promise<ResolvedImage> => {
    calls.push(`${ref} ${platform}`);
    throw Object.assign(new Error(`docker.io/library/${ref}:latest: no match for platform in manifest ${D('c')}: not found`), { code: 'NO_PLATFORM_MATCH' });
  };
  await assert.rejects(plan('FROM --platform=linux/Nonsense busybox\n', { resolveImage: noMatch }), (e: unknown) => {
    assert.ok(e instanceof DockerfileError);
    assert.match(e.message, new RegExp(`docker.io/library/busybox:latest: no match for platform in manifest ${D('c')}: not found`));
    assert.doesNotMatch(e.message, /failed to resolve/);
    return true;
  });
  assert.deepEqual(calls, ['busybox linux/nonsense']);
  await rejects('FROM --platform=linux/x/y/z busybox\n', 1, /FROM --platform: invalid platform "linux\/x\/y\/z"/);
});

test('a repository the resolver refuses the tenant (REPOSITORY_REFUSED) is reported as it is, at the line that names it', async () => {
  const refused = async (ref: string): Promise<ResolvedImage> => {
    throw Object.assign(new Error(`reg:5000/${ref.split('/').slice(1).join('/')}: tenant "bob" may only use repositories under reg:5000/bob/ …; pull from reg:5000/bob/…`), { code: 'REPOSITORY_REFUSED' });
  };
  for (const [text, line] of [['FROM reg:5000/alice/app\n', 1], ['FROM scratch\nCOPY --from=reg:5000/alice/app /a /b\n', 2], ['FROM scratch\nRUN --mount=from=reg:5000/alice/app,target=/m true\n', 2]] as const) {
    await assert.rejects(plan(text, { resolveImage: refused }), (e: unknown) => {
      assert.ok(e instanceof DockerfileError);
      assert.equal(e.message, `Dockerfile:${line}: reg:5000/alice/app: tenant "bob" may only use repositories under reg:5000/bob/ …; pull from reg:5000/bob/…`);
      return true;
    });
  }
});

test('step names follow BuildKit: no stage name in a one-stage Dockerfile, step numbers padded to the total\'s width', async () => {
  const names = (p: Awaited<ReturnType<typeof plan>>) => p.platforms[0].stages.flatMap((s) => s.vertices.map((v) => v.name));
  assert.deepEqual(names(await plan('FROM busybox\nRUN true\n')), ['[2/2] RUN true']);
  const long = await plan(`FROM busybox AS b\n${Array.from({ length: 10 }, (_, i) => `RUN echo ${i}`).join('\n')}\nFROM b\nRUN true\n`, { target: '' });
  const runs = names(long).filter((n) => n.includes('RUN echo'));
  assert.equal(runs[0], '[b  2/11] RUN echo 0');
  assert.equal(runs[9], '[b 11/11] RUN echo 9');
  assert.ok(names(long).includes('[stage-1 2/2] RUN true'), names(long).join('\n'));
});

test('--shm-size gives every RUN a /dev/shm tmpfs and --ulimit its rlimits, both part of the key', async () => {
  const text = 'FROM base\nRUN make\n';
  const plain = target(await plan(text)).vertices[0] as ExecVertex;
  const sized = target(await plan(text, { shmSize: 128 * 1024 ** 2, ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }] })).vertices[0] as ExecVertex;
  assert.deepEqual(plain.mounts.filter((m) => m.target === '/dev/shm'), []);
  assert.equal(plain.ulimits, undefined);
  assert.deepEqual(sized.mounts.filter((m) => m.target === '/dev/shm'), [{ type: 'tmpfs', target: '/dev/shm', size: 128 * 1024 ** 2 }]);
  assert.deepEqual(sized.ulimits, [{ name: 'nofile', soft: 1024, hard: 2048 }]);
  assert.notEqual(plain.cacheKey, sized.cacheKey);
  const otherLimit = target(await plan(text, { shmSize: 128 * 1024 ** 2, ulimits: [{ name: 'nofile', soft: 1024, hard: 4096 }] })).vertices[0] as ExecVertex;
  assert.notEqual(otherLimit.cacheKey, sized.cacheKey);
});

test('baseHistory counts the history of the image a stage\'s chain starts from (dockerfile2llb\'s baseImg): FROM a stage inherits it, scratch has none', async () => {
  const images = { base: { config: {}, history: [{ created_by: 'one' }, { created_by: 'two' }] } as ImageConfigFile };
  const p = await plan('FROM base AS a\nRUN true\nFROM a AS b\nENV X=1\nFROM b\n', { resolveImage: resolver(images) });
  assert.deepEqual(p.platforms[0].stages.map((s) => [s.name ?? `#${s.index}`, s.baseHistory]), [['a', 2], ['b', 2], ['#2', 2]]);
  assert.equal((await plan('FROM scratch\nCOPY x /x\n')).platforms[0].stages[0].baseHistory, undefined);
});

test('BUILDKIT_CACHE_MOUNT_NS puts cache mount ids in a namespace of their own, as dockerui (NS/ID)', async () => {
  const text = 'FROM alpine\nRUN --mount=type=cache,target=/root/.cache --mount=type=cache,id=go,target=/go true\n';
  const ids = async (buildArgs?: Record<string, string>) => (await plan(text, { buildArgs })).platforms[0].stages[0].vertices[0];
  const ns = await ids({ BUILDKIT_CACHE_MOUNT_NS: 'team-a' });
  const none = await ids();
  const mountIds = (v: typeof ns) => ('mounts' in v ? v.mounts.flatMap((m) => (m.type === 'cache' ? [m.id] : [])) : []);
  assert.deepEqual(mountIds(ns), ['team-a//root/.cache', 'team-a/go']);
  assert.deepEqual(mountIds(none), ['/root/.cache', 'go']);
  assert.notEqual(ns.cacheKey, none.cacheKey);
});

test('a base image of another platform than its stage (one manifest, no index) warns InvalidBaseImagePlatform once per stage, as current BuildKit; the check directive skips it or makes it fatal', async () => {
  const images = { amd64only: { os: 'linux', architecture: 'amd64', config: {} }, both: { os: 'linux', architecture: 'arm64', config: {} } } as Record<string, ImageConfigFile>;
  const twoPlatforms = { platforms: ['linux/amd64', 'linux/arm64'], resolveImage: resolver(images) };
  const p = await plan('FROM amd64only AS tool\nFROM both\nCOPY --from=tool /t /t\n', twoPlatforms);
  assert.deepEqual(p.warnings.filter((w) => w.message.startsWith('InvalidBaseImagePlatform')).sort((a, b) => (a.line ?? 0) - (b.line ?? 0)), [
    { message: 'InvalidBaseImagePlatform: Base image amd64only was pulled with platform "linux/amd64", expected "linux/arm64/v8" for current build', line: 1 },
    { message: 'InvalidBaseImagePlatform: Base image both was pulled with platform "linux/arm64/v8", expected "linux/amd64" for current build', line: 2 },
  ]);
  const skipped = await plan('# check=skip=InvalidBaseImagePlatform\nFROM amd64only\n', twoPlatforms);
  assert.equal(skipped.warnings.length, 0);
  await assert.rejects(plan('# check=error=true\nFROM amd64only\n', twoPlatforms), /lint violation found for rules: InvalidBaseImagePlatform/);
  // A config that names no platform (or the stage's own) warns nothing.
  assert.equal((await plan('FROM unnamed\n', twoPlatforms)).warnings.length, 0);
});

// The cases of BuildKit's dockerfile_check_test.go (testUnmatchedVars, testAllTargetUnmarshal).
test('UndefinedVar: a word BuildKit expands that reads a name neither set nor a declared ARG warns, once for all platforms, with a hint from the env', async () => {
  const undefinedVars = async (text: string, opts: Partial<PlanOptions> = {}) =>
    (await plan(text, opts)).warnings.filter((w) => w.message.startsWith('UndefinedVar')).map((w) => `${w.line}: ${w.message}`);
  assert.deepEqual(await undefinedVars('FROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n'), []);
  assert.deepEqual(await undefinedVars('FROM alpine AS base\nARG foo=Dockerfile\nFROM base\nCOPY $foo .\n'), []);
  assert.deepEqual(await undefinedVars('FROM alpine\nRUN echo $PATH $nope\n'), [], 'RUN is the shell\'s to expand');
  assert.deepEqual(await undefinedVars('FROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n'), ["2: UndefinedVar: Usage of undefined variable '$foo'"]);
  assert.deepEqual(await undefinedVars('FROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n'), [
    "5: UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)",
  ]);
  assert.deepEqual(await undefinedVars('FROM alpine\nENV PATH=$PAHT:/tmp/bin\n'), ["2: UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?)"]);
  // Only the stages built: the target's; every word kind BuildKit expands, each name once per instruction.
  assert.deepEqual(await undefinedVars('FROM scratch AS first\nCOPY $foo .\nFROM scratch AS second\nCOPY $bar .\n'), ["4: UndefinedVar: Usage of undefined variable '$bar'"]);
  assert.deepEqual(await undefinedVars('FROM alpine\nCOPY --chown=$U:${U} --chmod=${M:-644} a${X} /d/\nLABEL l=$L\nUSER $USR\nWORKDIR /w$W\nVOLUME /v$V\nSTOPSIGNAL SIG${S:-TERM}\nRUN --mount=type=cache,target=/c$C true\nEXPOSE 80$E\nARG BUILDKIT_SBOM_SCAN_STAGE\nENV e=$BUILDKIT_SBOM_SCAN_CONTEXT\n', { platforms: ['linux/amd64', 'linux/arm64'] }), [
    "2: UndefinedVar: Usage of undefined variable '$U'",
    "2: UndefinedVar: Usage of undefined variable '$M'",
    "2: UndefinedVar: Usage of undefined variable '$X'",
    "3: UndefinedVar: Usage of undefined variable '$L'",
    "4: UndefinedVar: Usage of undefined variable '$USR'",
    "5: UndefinedVar: Usage of undefined variable '$W'",
    "6: UndefinedVar: Usage of undefined variable '$V'",
    "7: UndefinedVar: Usage of undefined variable '$S'",
    "8: UndefinedVar: Usage of undefined variable '$C'",
  ]);
  assert.deepEqual(await undefinedVars('# check=skip=UndefinedVar\nFROM alpine\nCOPY $foo .\n'), []);
});
