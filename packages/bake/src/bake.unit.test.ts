// What the reference docker-buildx (v0.10.5) cannot check: matrix, the functions and variable
// types buildx added later, and our one-line errors with file:line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHcl } from './hcl/parse.js';
import { evaluateHcl } from './hclConfig.js';
import { flagOverrides, resolveTargets, type BakeFile } from './resolve.js';
import { printJson } from './target.js';

const builtins = { BAKE_CMD_CONTEXT: 'cwd://', BAKE_LOCAL_PLATFORM: 'linux/amd64' };

function resolve(text: string, opts: { targets?: string[]; env?: Record<string, string>; set?: string[]; name?: string } = {}) {
  const files: BakeFile[] = [{ name: opts.name ?? 'docker-bake.hcl', text }];
  return resolveTargets(files, { env: opts.env ?? {}, builtins, targets: opts.targets ?? [], overrides: opts.set ?? [] });
}

function args(text: string, env: Record<string, string> = {}): Record<string, string | null> {
  return resolve(text, { env }).targets.get('default')!.args ?? {};
}

test('matrix: one target per combination, named by `name`; the label and groups stand for all of them', () => {
  const r = resolve(`
group "default" { targets = ["app"] }
target "app" {
  name = "app-\${tgt}-\${replace(v, ".", "-")}"
  matrix = {
    tgt = ["dev", "prod"]
    v   = ["1.0", "2.0"]
  }
  target = tgt
  args = { VERSION = v }
  tags = ["app:\${v}-\${tgt}"]
}`);
  assert.deepEqual([...r.targets.keys()].sort(), ['app-dev-1-0', 'app-dev-2-0', 'app-prod-1-0', 'app-prod-2-0']);
  assert.deepEqual(r.groups.get('default')!.targets.sort(), ['app-dev-1-0', 'app-dev-2-0', 'app-prod-1-0', 'app-prod-2-0']);
  const t = r.targets.get('app-prod-2-0')!;
  assert.equal(t.target, 'prod');
  assert.deepEqual(t.args, { VERSION: '2.0' });
  assert.deepEqual(t.tags, ['app:2.0-prod']);
  const byLabel = resolve('target "x" {\n  name = "x-${a}"\n  matrix = { a = ["p", "q"] }\n}\n', { targets: ['x'] });
  assert.deepEqual([...byLabel.targets.keys()].sort(), ['x-p', 'x-q']);
  assert.throws(() => resolve('target "x" {\n  matrix = { a = ["p", "q"] }\n}\n'), /docker-bake\.hcl:1: duplicate name "x"/);
  assert.throws(() => resolve('target "x" {\n  name = "x"\n}\n'), /docker-bake\.hcl:2: name requires matrix/);
});

test('functions buildx added after v0.10.5 and the date/time ones', () => {
  const a = args(`
target "default" {
  args = {
    REP   = replace("a.b.c", ".", "_")
    RERE  = replace("v1.2.3", "/^v([0-9]+).*/", "major-$1")
    SEM   = semvercmp("1.4.2", ">= 1.2.0, < 2.0.0")
    SEM2  = semvercmp("2.1.0", "~1.2 || ^2.0")
    SEM3  = semvercmp("1.0.0", ">1.0.0")
    SANI  = sanitize("my.app/v1")
    IDX   = indexof(["a", "b", "c"], "c")
    BASE  = basename("/a/b/c.txt")
    DIR   = dirname("/a/b/c.txt")
    FDATE = formatdate("YYYY-MM-DD hh:mm:ss ZZZ EEE MMM", "2024-03-05T07:08:09Z")
    FTS   = formattimestamp("X", "2024-03-05T07:08:09Z")
    FTS2  = formattimestamp("DD MMMM YYYY", 1709622489)
    UNIX  = jsonencode(unixtimestampparse(1709622489))
    TADD  = timeadd("2024-03-05T07:08:09Z", "1h30m")
    SPLAT = join(",", [{ n = "a" }, { n = "b" }][*].n)
    STRIP = "x  %{~ if true ~}   y   %{~ endif ~}  z"
    OBJ   = jsonencode({ for k, v in { b = 2, a = 1 } : v => k })
    GRP   = jsonencode({ for s in ["ab", "ac", "bd"] : substr(s, 0, 1) => s... })
    UUID5 = uuidv5("dns", "example.com")
    CIDRS = join(" ", cidrsubnets("10.1.0.0/16", 4, 4, 8, 4))
    CIDR6 = cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)
    NMASK = cidrnetmask("172.16.0.0/12")
    CONV  = jsonencode(convert(["1", "2"], list(number)))
    CAN   = can(nosuch.attr) ? "yes" : "no"
    SET   = jsonencode(setunion(["b", "a"], ["c", "a"]))
    PROD  = jsonencode(setproduct(["a", "b"], [1, 2]))
    CSV   = jsonencode(csvdecode("a,b\\n1,2\\n"))
    REGEX = jsonencode(regex("(?P<maj>[0-9]+)\\\\.(?P<min>[0-9]+)", "v10.20"))
    ALL   = jsonencode(regexall("[a-z]+", "ab 12 cd"))
    FMTL  = join(",", formatlist("%s=%d", ["a", "b"], [1, 2]))
    BCRYPT = length(split("$", bcrypt("pw")))
  }
}`);
  assert.deepEqual(a, {
    REP: 'a_b_c', RERE: 'major-1', SEM: 'true', SEM2: 'true', SEM3: 'false', SANI: 'my_app_v1', IDX: '2', BASE: 'c.txt', DIR: '/a/b',
    FDATE: '2024-03-05 07:08:09 UTC Tue Mar', FTS: '1709622489', FTS2: '05 March 2024',
    UNIX: '{"day":5,"hour":7,"iso_week":10,"iso_year":2024,"minute":8,"month":3,"month_name":"March","rfc3339":"2024-03-05T07:08:09Z","second":9,"weekday":2,"weekday_name":"Tuesday","year":2024,"year_day":65}',
    TADD: '2024-03-05T08:38:09Z', SPLAT: 'a,b', STRIP: 'xyz', OBJ: '{"1":"a","2":"b"}', GRP: '{"a":["ab","ac"],"b":["bd"]}',
    UUID5: 'cfbff0d1-9375-5685-968c-48ce8b15ae17', CIDRS: '10.1.0.0/20 10.1.16.0/20 10.1.32.0/24 10.1.48.0/20',
    CIDR6: 'fd00:fd12:3456:7800:a200::/72', NMASK: '255.240.0.0', CONV: '[1,2]', CAN: 'no', SET: '["a","b","c"]',
    PROD: '[["a",1],["a",2],["b",1],["b",2]]', CSV: '[{"a":"1","b":"2"}]', REGEX: '{"maj":"10","min":"20"}', ALL: '["ab","cd"]',
    FMTL: 'a=1,b=2', BCRYPT: '4',
  });
});

test('typed variables: CSV and _JSON overrides from the environment, validation, and their errors', () => {
  const text = `
variable "PLATFORMS" {
  type = list(string)
  default = ["linux/amd64"]
}
variable "CFG" {
  type = object({ debug = bool, level = number })
  default = { debug = false, level = 1 }
}
variable "PORT" {
  type = number
  default = 80
  validation {
    condition = PORT > 0 && PORT < 65536
    error_message = "PORT must be a TCP port."
  }
}
target "default" {
  platforms = PLATFORMS
  args = { DEBUG = CFG.debug, LEVEL = CFG.level, PORT = PORT }
}`;
  const plain = resolve(text).targets.get('default')!;
  assert.deepEqual(plain.platforms, ['linux/amd64']);
  assert.deepEqual(plain.args, { DEBUG: 'false', LEVEL: '1', PORT: '80' });
  const env = resolve(text, { env: { PLATFORMS: 'linux/arm64,linux/amd64', CFG_JSON: '{"debug":true,"level":3}', PORT: '8080' } }).targets.get('default')!;
  assert.deepEqual(env.platforms, ['linux/arm64', 'linux/amd64']);
  assert.deepEqual(env.args, { DEBUG: 'true', LEVEL: '3', PORT: '8080' });
  assert.throws(() => resolve(text, { env: { PORT: '70000' } }), /^HclError: docker-bake\.hcl:14: variable "PORT": PORT must be a TCP port\.$/m);
  assert.throws(() => resolve(text, { env: { PORT: 'http' } }), /failed to parse PORT as number/);
  assert.throws(() => resolve(text, { env: { CFG: 'x' } }), /set CFG_JSON/);
});

test('errors are one line with file:line and what to do', () => {
  const cases: [string, RegExp][] = [
    ['target "a" {\n  tagz = ["x"]\n}\n', /^docker-bake\.hcl:2: unknown target attribute "tagz"/],
    ['target "a" {\n  tags = "x"\n}\n', /^docker-bake\.hcl:2: tags is a string; a list of strings is required/],
    ['target "a" {\n  args = { A = nope }\n}\n', /^docker-bake\.hcl:2: unknown variable "nope": define it with variable "nope"/],
    ['variable "A" { default = B }\nvariable "B" { default = A }\ntarget "a" {}\n', /variable cycle not allowed/],
    ['target "a" {\n  tags = ["x",\n', /^docker-bake\.hcl:3: expected an expression, found end of file/],
    ['target "a" {\n  tags = ["${upper(1, 2)}"]\n}\n', /^docker-bake\.hcl:2: wrong number of arguments: 1 expected, 2 given/],
    ['target "a" {\n  args = { X = "unterminated }\n}\n', /^docker-bake\.hcl:2: unterminated string/],
    ['target "a" {\n  args = target.a.args\n}\n', /reference cycle not allowed for target\.a\.args/],
    ['foo "x" {}\n', /^docker-bake\.hcl:1: unknown block type "foo"/],
    ['target "a.b" {}\n', /^docker-bake\.hcl:1: invalid target name "a\.b"/],
  ];
  for (const [text, re] of cases) {
    try {
      resolve(text, { targets: ['a'] });
      assert.fail(`no error for ${JSON.stringify(text)}`);
    } catch (e) {
      const m = (e as Error).message;
      assert.match(m, re, JSON.stringify(text));
      assert.doesNotMatch(m, /\n/);
    }
  }
  assert.throws(() => resolve('target "a" {}\n', { set: ['a.platform'] }), /--set a\.platform: expected TARGET\.KEY=VALUE/);
  assert.throws(() => resolve('target "a" {}\n', { set: ['b*.tags=x'] }), /could not find any target matching 'b\*'/);
});

test('the parser keeps HCL details: heredocs, comments, escapes, nested for, operators, and --print of JSON-unsafe text', () => {
  const body = parseHcl('# c\n// c\n/* c\n */\nx = "a\\"b\\u00e9\\n$${lit}"\ny = <<EOT\nline ${x}\nEOT\n', 'f.hcl');
  assert.deepEqual(body.attributes.map((a) => a.name), ['x', 'y']);
  const r = resolve(`
A = [[1, 2], [3]]
target "default" {
  args = {
    FLAT = join(",", [for xs in A : join("+", [for x in xs : x * 10 if x != 2])])
    MATH = 7 % 4 + 2 * 3 - -1
    CMP  = 1 < 2 && !(3 >= 4) || false
    ESC  = "\\"q\\" $\${x}"
    NEST = { a = { b = ["c"] } }.a.b[0]
    LEGACY = A.0.1
    HTML = "<a&b>"
  }
}`);
  const a = r.targets.get('default')!.args!;
  assert.equal(a.FLAT, '10,30');
  assert.equal(a.MATH, '10');
  assert.equal(a.CMP, 'true');
  assert.equal(a.ESC, '"q" ${x}');
  assert.equal(a.NEST, 'c');
  assert.equal(a.LEGACY, '2');
  assert.match(printJson(r.groups, r.targets), /"HTML": "\\u003ca\\u0026b\\u003e"/, 'Go escapes HTML characters in JSON');
});

test('compose: list args resolved from the environment, x-bake, secrets; HCL over compose', () => {
  const files: BakeFile[] = [
    { name: 'compose.yaml', text: 'services:\n  app:\n    build:\n      context: app\n      args: [A=1, B]\n      secrets: [tok]\n      x-bake:\n        platforms: [linux/amd64, linux/arm64]\n        no-cache: true\n    image: reg/app:${TAG:-dev}\nsecrets:\n  tok:\n    file: ./token.txt\n' },
    { name: 'docker-bake.hcl', text: 'target "app" {\n  tags = ["reg/app:hcl"]\n}\n' },
  ];
  const r = resolveTargets(files, { env: { B: 'fromenv' }, builtins, targets: [], overrides: [] });
  const t = r.targets.get('app')!;
  assert.deepEqual(t.args, { A: '1', B: 'fromenv' });
  assert.deepEqual(t.secret, ['id=tok,src=./token.txt']);
  assert.deepEqual(t.platforms, ['linux/amd64', 'linux/arm64']);
  assert.equal(t['no-cache'], true);
  assert.deepEqual(t.tags, ['reg/app:hcl']);
  assert.deepEqual(r.groups.get('default')!.targets, ['app']);
});

test('evaluateHcl reports what a matrix renamed', () => {
  const { renamed, config } = evaluateHcl([parseHcl('target "t" {\n  name = "t-${x}"\n  matrix = { x = ["1", "2"] }\n}\n', 'f.hcl')], { env: {}, builtins });
  assert.deepEqual(renamed.get('t'), ['t-1', 't-2']);
  assert.deepEqual(config.targets.map((t) => t.name), ['t-1', 't-2']);
});

test('attestations merge by type, as current buildx: inherits, --set and --provenance replace the same type', () => {
  const r = resolve('target "base" {\n  attest = ["type=provenance,mode=min", "type=sbom"]\n}\ntarget "default" {\n  inherits = ["base"]\n  attest = ["type=provenance,mode=max"]\n}\n', { set: ['*.attest=type=sbom,generator=x'] });
  assert.deepEqual(r.targets.get('default')!.attest, ['type=provenance,mode=max', 'type=sbom,generator=x']);
  // Current buildx spells a boolean shorthand disabled=... (v0.10.5 wrote enabled=...).
  assert.deepEqual(flagOverrides({ sbom: 'true', provenance: 'false' }), ['*.attest=type=sbom,disabled=false', '*.attest=type=provenance,disabled=true']);
});

test('names that are Object.prototype members are plain names (variables, args keys, compose keys)', () => {
  const r = resolve('variable "constructor" { default = "c" }\ntarget "default" {\n  args = { __proto__ = "p", toString = constructor }\n}\n', { env: {} });
  assert.deepEqual(Object.entries(r.targets.get('default')!.args!).sort(), [['__proto__', 'p'], ['toString', 'c']]);
  assert.throws(() => resolve('target "default" {\n  tags = [hasOwnProperty]\n}\n'), /unknown variable "hasOwnProperty"/);
});
