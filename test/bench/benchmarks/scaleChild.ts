// One process of the simulated fleet of the `scale` benchmark: COUNT no-op StageConsumers with
// ids scale-FIRST.. (forked by scale.ts; argv: redisUrl prefix first count capacity). Reports
// over IPC: {ready} once all consumers started, {lat, at} when a latency build's handler is
// entered (wall clock, comparable across processes), {closed, errors, lostWakeUps} after a {close}
// request (the consumers' errors, and the jobs only their safety poll found, each with the first).
import { StageConsumer } from '@buildyard/scheduler';

const [redisUrl, prefix, first, count, capacity] = process.argv.slice(2);
const send = (m: unknown) => process.send!(m);
let errors = 0;
let firstError = '';
let lostWakeUps = 0;
let firstLost = '';
const consumers: StageConsumer[] = [];
for (let i = 0; i < Number(count); i++) {
  consumers.push(new StageConsumer({
    redis: redisUrl, prefix,
    worker: { id: `scale-${Number(first) + i}`, nativePlatforms: ['linux/amd64'], emulatedPlatforms: [], capacity: Number(capacity) },
    onError: (e) => { errors++; firstError ||= e.message; },
    onLostWakeUp: (d) => { lostWakeUps++; firstLost ||= JSON.stringify(d); },
    handler: async (job) => {
      if (job.buildId.startsWith('lat-')) send({ lat: job.buildId, at: performance.timeOrigin + performance.now() });
      return null;
    },
  }));
}
// Started in small batches: hundreds of simultaneous connects would only measure the accept queue.
for (let i = 0; i < consumers.length; i += 20) await Promise.all(consumers.slice(i, i + 20).map((c) => c.start()));
send({ ready: true });
process.on('message', (m: { close?: boolean }) => {
  if (!m.close) return;
  void Promise.all(consumers.map((c) => c.close())).then(() => {
    send({ closed: true, errors, firstError, lostWakeUps, firstLost });
    process.disconnect();
  });
});
