// `bake --print` against the reference `docker-buildx bake --print` (v0.10.5, ../shared/tools):
// the same files, targets, --set and environment give byte-identical JSON, or both refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { referenceTools } from '@buildyard/testkit';
import { bakeBuiltins, flagOverrides, readBakeFiles, resolveTargets } from './resolve.js';
import { printJson } from './target.js';

const tools = referenceTools('docker-buildx');

interface Case {
  name: string;
  files: Record<string, string>;
  args?: string[];
  env?: Record<string, string>;
  /** buildx lists compose services in Go map order (random): compare group members as sets. */
  unorderedGroups?: boolean;
}

const HCL_BASIC = `
variable "TAG" { default = "latest" }
variable "REG" { default = "127.0.0.1:5000" }
variable "DEBUG" { default = false }
variable "JOBS" { default = 2 }
function "tag" {
  params = [name, t]
  result = ["\${REG}/\${name}:\${t}"]
}
function "joined" {
  params = [sep]
  variadic_params = parts
  result = join(sep, parts)
}
group "default" { targets = ["app", "db"] }
group "all" { targets = ["default", "tools"] }
target "base" {
  args = { A = "1", B = null }
  labels = { "org.x" = "y" }
  platforms = ["linux/amd64"]
  cache-from = ["type=registry,ref=base"]
  secret = ["id=one,src=secret.txt"]
}
target "mid" {
  inherits = ["base"]
  args = { M = "mid", A = "2" }
  cache-from = ["type=registry,ref=mid"]
  tags = ["mid"]
}
target "app" {
  inherits = ["mid"]
  context = "app"
  dockerfile = "Dockerfile.app"
  tags = tag("app", TAG)
  args = { C = "\${TAG}-x", N = 3, D = DEBUG ? "yes" : "no", J = JOBS * 2, J2 = joined("-", "a", "b", "c") }
  output = ["type=registry"]
  no-cache = true
  pull = false
  secret = ["id=two,src=secret.txt"]
}
target "db" {
  dockerfile-inline = "FROM scratch"
  tags = [for p in ["a", "b"] : "\${p}:\${upper(TAG)}" if p != "c"]
  target = "final"
  cache-to = ["type=inline"]
}
target "tools" {
  context = "."
  args = {
    LIST = join(",", sort(["z", "y", "x"]))
    MAP  = jsonencode({ b = 1, a = [true, null] })
    FMT  = format("%s-%03d-%.2f-%q", "x", 7, 3.14159, "q")
    SUB  = substr("hello world", 6, -1)
    RE   = regex_replace("v1.2.3", "^v([0-9]+).*", "$1")
    KEYS = join(" ", keys({ z = 1, a = 2 }))
    LEN  = "\${strlen("héllo")}-\${length(["a", "b"])}"
    MAX  = max(3, 9, 1)
    TRY  = try(undefined_thing.x, "fallback")
    COAL = coalesce("", "second")
    SPL  = split(",", "a,b")[1]
    HEX  = md5("buildyard")
    SHA  = sha256("buildyard")
    B64  = base64encode("hi there")
    LOW  = lower(title("hello world"))
    IDX  = index(["a", "b"], 1)
    FL   = join("|", flatten([["a"], ["b", ["c"]]]))
    DIS  = join("|", distinct(["a", "b", "a"]))
    CIDR = cidrsubnet("10.0.0.0/16", 8, 2)
    HOST = cidrhost("10.0.0.0/24", 5)
    ELEM = element(["x", "y"], 3)
    RNG  = join(",", [for n in range(3) : tostring(n)])
    TOF  = "%{ if DEBUG }debug%{ else }release%{ endif }"
    LOOP = "%{ for x in ["a", "b"] }<\${x}>%{ endfor }"
    HERE = <<-EOT
      one
        two \${TAG}
      EOT
    ZIP  = jsonencode(zipmap(["a", "b"], [1, 2]))
    MERG = jsonencode(merge({ a = 1 }, { b = 2 }))
    INT  = parseint("ff", 16)
    CHOMP = chomp("x\\n")
    TRIM = trimsuffix(trimprefix("--x--", "--"), "--")
    LOOK = lookup({ a = "1" }, "b", "dflt")
  }
  platforms = ["linux/arm64", "linux/amd64", "linux/arm64"]
}
`.replace(/tostring\(n\)/g, 'format("%d", n)');

const EXPRESSIONS = `variable "L" { default = ["b", "a", "c"] }
variable "M" { default = { z = "1", a = "2" } }
variable "N" { default = 3.5 }
target "default" {
  args = {
    E01 = "\${N}"
    E02 = N * 2
    E03 = 10 / 4
    E04 = 1e3
    E05 = 0.1 + 0.2
    E06 = -7 % 3
    E07 = "\${1 == 1.0}"
    E08 = "\${"a" == "a"} \${[1] == [1]}"
    E09 = join(",", [for k, v in M : "\${k}=\${v}"])
    E10 = join(",", [for i, v in L : "\${i}:\${v}"])
    E11 = jsonencode({ for i, v in L : v => i })
    E12 = jsonencode([for v in L : upper(v) if v != "a"])
    E13 = L[1]
    E14 = M["z"]
    E15 = jsonencode(L[*])
    E16 = "%{ for v in L }\${v}%{ if v != "c" },%{ endif }%{ endfor }"
    E17 = <<-EOT
      a
        b
      c
    EOT
    E18 = "tab\\there"
    E19 = "uni\\u00e9"
    E20b = format("%g %g %g %.3g %.10g %g", 1234567.0, 123456, 100, 3.14159, 1234567, -0.5)
    E20 = format("%5s|%-5s|%05d|%x|%X|%o|%b|%e|%g|%t|%v|%#v", "ab", "cd", 42, 255, 255, 8, 5, 1234.5678, 0.000012, true, "v", "q")
    E22 = 100000000000000000000
    E23 = jsonencode(["a", 1, true, null])
    E24 = trimspace("  x  ")
    E25 = title("hello wORLD foo-bar")
    E26 = jsonencode(chunklist(["a","b","c"], 2))
    E27 = jsonencode(slice(L, 0, 2))
    E29 = jsonencode(sort(L))
    E30 = join("", regexall("[0-9]", "a1b2c3"))
    E31 = regex_replace("hello", "l+", "L")
    E32 = urlencode("a b&c/d")
    E33 = jsonencode(values(M))
    E34 = jsonencode(setintersection(["a","b"], ["b","c"]))
    E35 = indent(2, "a\\nb")
    E36 = jsonencode(csvdecode("x,y\\n\\"1,2\\",3\\n"))
    E37 = formatdate("DD MMM YYYY hh:mm ZZZZ", "2018-01-02T23:12:01-08:00")
    E39 = jsonencode(contains(L, "a"))
    E40 = jsonencode(compact(["a", "", "b"]))
    E42 = jsonencode(merge(M, { b = 3 }))
    E43 = substr("abcdef", -3, 2)
    E44 = jsonencode(split("/", "a//b"))
    E45 = "\${true ? "y" : "n"}\${false ? 1 : 2}"
    E46 = jsonencode(zipmap(["k"], [[1,2]]))
    E47 = jsonencode(flatten([[], [[]], "x"]))
    E48 = jsonencode(coalescelist([], ["a"]))
    E49 = 7.0
    E50 = 2.50
    E51 = jsonencode(range(1, 10, 3))
    E52 = jsonencode(range(5, 0))
    E53 = pow(2, 10)
    E54 = log(100, 10)
    E55 = floor(-1.5)
    E56 = ceil(1.2)
    E57 = signum(-3)
    E58 = parseint("-101", 2)
    E59 = int(-3.9)
    E60 = jsonencode(setproduct(["a"], ["b", "c"]))
    E61 = jsondecode("{\\"b\\":[1,2],\\"a\\":{\\"c\\":null}}").b[1]
    E62 = jsonencode(jsondecode("1.50"))
    E63 = sha1("x")
    E64 = base64decode("aGVsbG8=")
    E65 = jsonencode(keys({b=1, a=2, "c d"=3}))
    E66 = jsonencode(formatlist("%s-%s", ["a","b"], "z"))
    E67 = "\${"$\${"}"
    E68 = trim("xxaxx", "x")
    E69 = jsonencode(element(L, -0))
    E70 = cidrsubnet("2001:db8::/32", 16, 1)
    E71 = cidrhost("10.0.0.0/8", -1)
    E72 = jsonencode(cidrsubnets("10.0.0.0/8", 8, 16, 8))
    E73 = jsonencode(setsymmetricdifference(["a","b"], ["b","c"], ["c","d"]))
  }
}
`;

const cases: Case[] = [
  { name: 'expressions: arithmetic, comparisons, for, splat, directives, heredocs, escapes and ~70 function calls', files: { 'docker-bake.hcl': EXPRESSIONS } },
  { name: 'defaults: groups, inherits, functions, for, conditionals', files: { 'docker-bake.hcl': HCL_BASIC } },
  { name: 'a named group of groups', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['all'] },
  { name: 'one target by name', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['tools'] },
  { name: 'targets and a group named together', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['db', 'tools', 'default'] },
  { name: 'variables from the environment (string, bool, number)', files: { 'docker-bake.hcl': HCL_BASIC }, env: { TAG: 'v2', DEBUG: 'true', JOBS: '5' } },
  {
    name: '--set: patterns, lists, maps, bools, push',
    files: { 'docker-bake.hcl': HCL_BASIC },
    args: ['all', '--set', '*.platform=linux/arm64', '--set', 'app.args.NEW=1', '--set', 'a*.tags=x:1', '--set', 'app.tags=x:2',
      '--set', 'db.no-cache=false', '--set', 'tools.output=type=local,dest=out', '--set', 'db.context=sub', '--set', 'db.labels.l=v', '--push'],
  },
  { name: '--provenance and --sbom add attest entries', files: { 'docker-bake.hcl': 'target "default" {\n  tags = ["x"]\n}\n' }, args: ['--provenance', 'mode=max'] },
  { name: '--no-cache and --pull apply to every target', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['--no-cache', '--pull'] },
  {
    name: 'JSON bake file with interpolation',
    files: {
      'docker-bake.json': JSON.stringify({
        variable: { TAG: { default: 'json' }, BASE: { default: 'busybox' } },
        group: { default: { targets: ['web'] } },
        target: {
          web: { context: 'web', tags: ['web:${TAG}', 'web:${upper(TAG)}'], args: { BASE: '${BASE}', N: 1, OK: true }, platforms: ['linux/amd64'] },
          other: { dockerfile: 'Other.Dockerfile', labels: { 'a.b': '<x&y>' } },
        },
      }, null, 2),
    },
    args: ['default', 'other'],
    env: { TAG: 'fromenv' },
  },
  { name: 'JSON syntax: a user function, arithmetic and directives in strings', files: { 'docker-bake.json': `{
  "variable": { "TAG": { "default": "x" }, "N": { "default": 2 } },
  "function": { "tagged": { "params": ["n"], "result": "\${n}:\${TAG}" } },
  "target": {
    "default": {
      "tags": ["\${tagged(\\"app\\")}", "\${N + 1}", "%{ if N > 1 }many%{ endif }"],
      "args": { "K": "\${jsonencode([for i in range(N) : i])}" },
      "no-cache": true,
      "platforms": ["linux/amd64"]
    }
  }
}
` } },
  {
    name: 'docker-bake.hcl and docker-bake.override.hcl merge by default',
    files: {
      'docker-bake.hcl': 'variable "V" { default = "a" }\ntarget "default" {\n  tags = ["t:${V}"]\n  args = { X = "1" }\n  cache-from = ["type=gha"]\n}\n',
      'docker-bake.override.hcl': 'variable "V" { default = "b" }\ntarget "default" {\n  args = { Y = "2" }\n  cache-from = ["type=local,src=c"]\n  platforms = ["linux/arm64"]\n}\n',
    },
  },
  {
    name: '-f several files, later ones win',
    files: {
      'one.hcl': 'target "x" {\n  tags = ["one"]\n  target = "a"\n}\ngroup "default" { targets = ["x"] }\n',
      'two.hcl': 'target "x" {\n  tags = ["two"]\n  output = ["type=cacheonly"]\n}\n',
    },
    args: ['-f', 'one.hcl', '-f', 'two.hcl'],
  },
  {
    name: 'compose file with build sections, image tags and args',
    unorderedGroups: true,
    files: {
      'docker-compose.yml': [
        'services:',
        '  web.app:',
        '    image: example/web:${TAG:-dev}',
        '    build:',
        '      context: ./web',
        '      dockerfile: Web.Dockerfile',
        '      target: prod',
        '      args:',
        '        - A=1',
        '        - FROMENV',
        '      labels:',
        '        l1: v1',
        '      cache_from:',
        '        - type=registry,ref=c',
        '  worker:',
        '    build: ./worker',
        '  db:',
        '    image: postgres',
        '',
      ].join('\n'),
    },
    env: { FROMENV: 'e', TAG: '1.0' },
  },
  {
    name: 'compose reads .env beside it; the environment wins over it',
    files: {
      'docker-compose.yml': 'services:\n  app:\n    image: reg/app:${TAG}\n    build:\n      context: ${CTX:-.}\n      args:\n        - FROM_DOTENV=${DOTENV_ONLY}\n',
      '.env': '# comment\nTAG=from-dotenv\nexport DOTENV_ONLY="quoted value"\nCTX=sub # trailing comment\n',
    },
    env: { TAG: 'from-env' },
  },
  {
    name: 'compose plus an HCL file that extends its targets',
    files: {
      'docker-compose.yml': 'services:\n  api:\n    build:\n      context: api\n',
      'docker-bake.hcl': 'target "api" {\n  platforms = ["linux/amd64", "linux/arm64"]\n  tags = ["api:hcl"]\n}\n',
    },
    args: ['-f', 'docker-compose.yml', '-f', 'docker-bake.hcl'],
  },
  {
    name: 'target attributes referenced from other targets and top-level attributes',
    files: {
      'docker-bake.hcl': 'BASE = "alpine"\nSUFFIX = "${BASE}-x"\ntarget "a" {\n  args = { BASE = BASE }\n  tags = ["a:${SUFFIX}"]\n}\ntarget "b" {\n  args = { FROM_A = target.a.args.BASE }\n  tags = [for t in target.a.tags : "${t}-b"]\n}\ngroup "default" { targets = ["a", "b"] }\n',
    },
  },
  {
    name: 'built-in variables, variables read before they are defined, SOURCE_DATE_EPOCH',
    files: {
      'docker-bake.hcl': 'target "default" {\n  args = { CTX = BAKE_CMD_CONTEXT, P = BAKE_LOCAL_PLATFORM, FULL = FULL }\n  tags = ["${NAME}:${V}"]\n}\nvariable "FULL" { default = "${NAME}-${V}" }\nvariable "NAME" { default = lower("APP") }\nvariable "V" { default = "1.${MINOR}" }\nvariable "MINOR" { default = 4 }\n',
    },
    env: { SOURCE_DATE_EPOCH: '1700000000', MINOR: '7' },
  },
  {
    name: 'target: contexts pull the linked target in without its outputs; --set args from the environment',
    files: {
      'docker-bake.hcl': 'target "base" {\n  dockerfile = "base.Dockerfile"\n  output = ["type=registry"]\n  tags = ["base"]\n}\ntarget "app" {\n  contexts = { base = "target:base", empty = "" }\n}\ngroup "default" { targets = ["app"] }\n',
    },
    args: ['--set', 'app.args.FROMENV', '--set', 'app.args.MISSING'],
    env: { FROMENV: 'yes' },
  },
  {
    name: 'plain heredocs, nested objects in args, numbers and bools as strings',
    files: {
      'docker-bake.hcl': 'target "default" {\n  dockerfile-inline = <<EOT\nFROM scratch\nCOPY ${"a"} /\nEOT\n  args = {\n    "with.dot" = 1.5\n    T = true\n    BIG = 1000000\n    NEG = -3\n  }\n  no-cache = "true"\n}\n',
    },
  },
  {
    name: 'compose x-bake fields',
    files: {
      'docker-compose.yml': 'services:\n  app:\n    build:\n      context: .\n      x-bake:\n        platforms:\n          - linux/amd64\n          - linux/arm64\n        tags: [a:1]\n        cache-to: type=inline\n        pull: true\n        output: type=registry\n',
    },
  },
  { name: 'syntax: comments in lists, trailing commas, \':\' in objects, quoted keys', files: { 'docker-bake.hcl': "target \"default\" {\n  tags = [\n    \"a\", # comment\n    \"b\",\n  ]\n  args = {\n    A = \"1\",\n    B = \"2\"\n    \"C.D\" : \"3\"\n  }\n}\n" } },
  { name: 'syntax: a for expression across lines, an unquoted block label, nested quotes in templates', files: { 'docker-bake.hcl': "target default {\n  tags = [for x in [\"a\",\"b\"]:\n    \"${upper(x)}${\"-y\"}\"]\n}\n" } },
  { name: 'syntax: a heredoc as an object value, computed object keys, comments between attributes', files: { 'docker-bake.hcl': "target \"default\" {\n  args = {\n    X = <<EOT\nhello\nEOT\n    \"${\"dyn\"}key\" = \"v\"\n    (upper(\"k\")) = \"w\"\n  }\n  tags = [\"x\"] // trailing\n  /* block */ labels = { a = \"1\", a = \"2\" }\n}\n" } },
  { name: 'a variable defined twice takes the last; a target defined twice merges', files: { 'docker-bake.hcl': "variable \"X\" {\n  default = \"a\"\n}\nvariable \"X\" {\n  default = \"b\"\n}\ntarget \"default\" {\n  tags = [X]\n}\ntarget \"default\" {\n  args = { A = \"1\" }\n}\n" } },
  { name: 'an attribute set twice in a body fails', files: { 'docker-bake.hcl': "target \"default\" {\n  tags = [\"a\"]\n  tags = [\"b\"]\n}\n" } },
  { name: 'a top-level attribute set twice fails', files: { 'docker-bake.hcl': "X = \"a\"\nX = \"b\"\ntarget \"default\" {\n  tags = [X]\n}\n" } },
  { name: 'two attributes on one line fail', files: { 'docker-bake.hcl': "target \"default\" {\n  tags = [\"a\"] args = {}\n}\n" } },
  { name: 'an unknown target fails', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['nosuch'] },
  { name: 'an undefined variable fails', files: { 'docker-bake.hcl': 'target "default" {\n  tags = [NOPE]\n}\n' } },
  { name: 'an unknown function fails', files: { 'docker-bake.hcl': 'target "default" {\n  tags = [nosuchfn("a")]\n}\n' } },
  { name: 'an unknown --set key fails', files: { 'docker-bake.hcl': HCL_BASIC }, args: ['--set', 'app.nope=1'] },
  { name: 'inheriting from a missing target fails', files: { 'docker-bake.hcl': 'target "default" {\n  inherits = ["ghost"]\n}\n' } },
  { name: 'a syntax error fails', files: { 'docker-bake.hcl': 'target "default" {\n  tags = ["a"\n}\n' } },
];

function parseArgs(args: string[]): { targets: string[]; file: string[]; set: string[]; push: boolean; noCache?: boolean; pull?: boolean; provenance?: string; sbom?: string } {
  const out = { targets: [] as string[], file: [] as string[], set: [] as string[], push: false, noCache: undefined as boolean | undefined, pull: undefined as boolean | undefined, provenance: undefined as string | undefined, sbom: undefined as string | undefined };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-f') out.file.push(args[++i]);
    else if (a === '--set') out.set.push(args[++i]);
    else if (a === '--push') out.push = true;
    else if (a === '--no-cache') out.noCache = true;
    else if (a === '--pull') out.pull = true;
    else if (a === '--provenance') out.provenance = args[++i];
    else if (a === '--sbom') out.sbom = args[++i];
    else out.targets.push(a);
  }
  return out;
}

for (const c of cases) {
  test(`--print matches docker-buildx bake --print: ${c.name}`, { skip: tools.missing }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bake-print-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(c.files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    writeFileSync(join(dir, 'secret.txt'), 's3cret');
    // Only PATH and HOME from the machine: the fixtures' variables must not meet stray ones.
    const env = { PATH: process.env.PATH ?? '', HOME: dir, ...c.env };
    const ref = spawnSync(tools.paths['docker-buildx'], ['bake', '--print', ...(c.args ?? [])], {
      cwd: dir, encoding: 'utf8', env: { ...env, BUILDX_CONFIG: join(dir, '.buildx') },
    });
    const a = parseArgs(c.args ?? []);
    let ours: { text?: string; error?: string };
    try {
      const resolved = resolveTargets(readBakeFiles(a.file, dir), { env, targets: a.targets, overrides: flagOverrides(a), builtins: bakeBuiltins(), cwd: dir });
      ours = { text: `${printJson(resolved.groups, resolved.targets)}\n` };
    } catch (e) {
      ours = { error: (e as Error).message };
    }
    if (ref.status === 0) {
      assert.equal(ours.error, undefined, 'ours failed where buildx printed');
      const norm = (text: string) => {
        if (!c.unorderedGroups) return text;
        const j = JSON.parse(text) as { group?: Record<string, { targets: string[] }> };
        for (const g of Object.values(j.group ?? {})) g.targets.sort();
        return JSON.stringify(j, null, 2);
      };
      assert.equal(norm(ours.text!), norm(ref.stdout));
    } else {
      assert.equal(ours.text, undefined, `buildx refused (${ref.stderr.trim()}) but ours printed`);
      assert.doesNotMatch(ours.error!, /\n/, 'one line');
    }
  });
}
