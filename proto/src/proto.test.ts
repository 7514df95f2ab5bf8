import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, credentials, type ServerWritableStream } from '@grpc/grpc-js';
import { ControlClient, ControlService, InfoResponse, SolveEvent, SolveRequest } from './index.js';

const protoDir = join(dirname(fileURLToPath(import.meta.url)), '..');

test('committed generated code matches the .proto files', () => {
  const out = mkdtempSync(join(tmpdir(), 'buildyard-proto-'));
  try {
    execFileSync(join(protoDir, '../node_modules/.bin/buf'), ['generate', '-o', out], { cwd: protoDir });
    // Every generated file: ours (buildyard/v1) and BuildKit's (moby/, fsutil/, google/).
    const committedDir = join(protoDir, 'src/gen');
    const generated = readdirSync(join(out, 'src/gen'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).sort();
    assert.deepEqual(readdirSync(committedDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).sort(), generated, 'generated files differ: run npm run generate');
    for (const name of generated) {
      assert.equal(
        readFileSync(join(out, 'src/gen', name), 'utf8'),
        readFileSync(join(committedDir, name), 'utf8'),
        `${name} is stale: run npm run generate`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('Control round-trips Info and a streaming Solve over loopback', async () => {
  const server = new Server();
  server.addService(ControlService, {
    info: (_call: unknown, cb: (err: null, res: InfoResponse) => void) =>
      cb(null, InfoResponse.fromPartial({ version: '1.2.3', nativePlatforms: ['linux/amd64'] })),
    solve: (call: ServerWritableStream<SolveRequest, SolveEvent>) => {
      call.write(SolveEvent.fromPartial({ accepted: { buildId: 'b1', platforms: call.request.platforms } }));
      call.write(SolveEvent.fromPartial({ result: { buildId: 'b1', digest: 'sha256:' + 'a'.repeat(64) } }));
      call.end();
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new ControlClient(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const info = await new Promise<InfoResponse>((resolve, reject) => client.info({}, (err, res) => (err ? reject(err) : resolve(res))));
    assert.equal(info.version, '1.2.3');
    assert.deepEqual(info.nativePlatforms, ['linux/amd64']);
    const events: SolveEvent[] = [];
    const stream = client.solve(SolveRequest.fromPartial({ platforms: ['linux/arm64'] }));
    for await (const ev of stream) events.push(ev as SolveEvent);
    assert.deepEqual(events[0].accepted?.platforms, ['linux/arm64']);
    assert.equal(events[1].result?.digest, 'sha256:' + 'a'.repeat(64));
  } finally {
    client.close();
    server.forceShutdown();
  }
});
