import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadTokens, configReference, OPTIONS } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'buildyard-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };

test('defaults, then file, then environment', () => {
  const f = file('a.toml', '[redis]\nurl = "redis://127.0.0.1:7000"\n[worker]\ncapacity = 3\n');
  const c = loadConfig({ file: f, env: { BUILDYARD_WORKER_CAPACITY: '5' } });
  assert.equal(c.redis.url, 'redis://127.0.0.1:7000');
  assert.equal(c.worker.capacity, 5);
  assert.equal(c.frontend.listen, '127.0.0.1:8372');
  assert.deepEqual(c.registry.insecure, []);
  assert.deepEqual(loadConfig({ env: { BUILDYARD_INSECURE_REGISTRIES: 'a:5000, b:5000' } }).registry.insecure, ['a:5000', 'b:5000']);
});

test('errors name the option, the source and the problem', () => {
  assert.throws(() => loadConfig({ env: { BUILDYARD_WORKER_CAPACITY: 'many' } }), /invalid worker\.capacity from \$BUILDYARD_WORKER_CAPACITY/);
  assert.throws(() => loadConfig({ file: file('b.toml', '[redis]\nurll = "x"\n'), env: {} }), /unknown option "redis\.urll"/);
  assert.throws(() => loadConfig({ file: file('c.toml', 'redis = [\n'), env: {} }), /invalid TOML/);
  assert.throws(() => loadConfig({ env: { BUILDYARD_REDIS_URL: 'http://x' } }), /expected redis:\/\/host:port/);
  assert.deepEqual(loadConfig({ env: { BUILDYARD_TENANT_SCOPED_REGISTRIES: 'reg:5000, reg.example', BUILDYARD_SHARED_READONLY_REPOSITORIES: 'reg:5000/library' } }).registry,
    { insecure: [], trusted: [], tenantScoped: ['reg:5000', 'reg.example'], sharedReadOnly: ['reg:5000/library'] });
  assert.throws(() => loadConfig({ env: { BUILDYARD_TENANT_SCOPED_REGISTRIES: 'reg:5000/alice' } }), /invalid registry\.tenantScoped .*expected host\[:port\] entries/);
  assert.throws(() => loadConfig({ env: { BUILDYARD_SHARED_READONLY_REPOSITORIES: 'reg:5000' } }), /invalid registry\.sharedReadOnly .*expected host\[:port\]\/prefix entries/);
});

test('tokens map to tenants; malformed entries are refused', () => {
  const tokensFile = file('tokens', '# comment\nteam-a:tok-a\nteam-b:tok:b\n');
  const tokens = loadTokens(loadConfig({ env: { BUILDYARD_TOKENS_FILE: tokensFile, BUILDYARD_TOKENS: 'ci:tok-ci' } }));
  assert.equal(tokens.get('tok-a'), 'team-a');
  assert.equal(tokens.get('tok:b'), 'team-b');
  assert.equal(tokens.get('tok-ci'), 'ci');
  assert.throws(() => loadTokens(loadConfig({ env: { BUILDYARD_TOKENS: 'nocolon' } })), /expected tenant:token/);
});

test('the typed config has exactly the options of the table', () => {
  const leaves: string[] = [];
  const walk = (o: object, prefix: string) => { for (const [k, v] of Object.entries(o)) { if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, prefix + k + '.'); else leaves.push(prefix + k); } };
  walk(loadConfig({ env: {} }), '');
  assert.deepEqual(leaves.sort(), OPTIONS.map((o) => o.path).sort());
});

test('the reference lists every option with its variable', () => {
  const ref = configReference();
  for (const o of OPTIONS) assert.ok(ref.includes(`\`${o.env}\``), o.env);
});
