// ARG scoping and predefined args (BuildKit's dockerfile_test.go: testArgDefaultExpansion,
// testDefaultShellAndPath, testBuiltinArgs, testGlobalArg, testArgsNoDefault,
// testPlatformArgsImplicit, testProxyArgs).
import { createHash } from 'node:crypto';
import type { Case } from '../lib/types.js';
import { allHistory, argHistory, chain, copyFlagsHistory, error, HEALTH_CHANGE, healthHistory, heredocMode, historyAt, onBaseTime } from './upstream.js';

export const cases: Case[] = [
  { name: 'arg-default', dockerfile: 'FROM {{BASE}}\nARG A=1\nRUN echo $A > /a\n' },
  { name: 'arg-build-arg-overrides', upstream: argHistory(historyAt(0, 'ARG A=from-cli')), dockerfile: 'FROM {{BASE}}\nARG A=1\nRUN echo $A > /a\n', args: { A: 'from-cli' } },
  { name: 'arg-no-default', dockerfile: 'FROM {{BASE}}\nARG A\nRUN echo "[$A]" > /a\n' },
  { name: 'arg-history-prefix-multiple', upstream: argHistory(historyAt(1, 'ARG C=3')), dockerfile: 'FROM {{BASE}}\nARG A=1 B=2\nARG C\nENV E=e\nRUN true\n', args: { C: '3' } },
  { name: 'arg-env-wins', upstream: argHistory(historyAt(0, 'ARG A=cli')), dockerfile: 'FROM {{BASE}}\nARG A=arg\nENV A=env\nRUN echo $A > /a\n', args: { A: 'cli' } },
  { name: 'arg-global-scope', upstream: argHistory(historyAt(1, 'ARG G=global')), dockerfile: 'ARG G=global\nFROM {{BASE}}\nRUN echo "[$G]" > /before\nARG G\nRUN echo "[$G]" > /after\n' },
  { name: 'arg-global-in-from', dockerfile: 'ARG IMG={{BASE}}\nFROM $IMG\nRUN true\n' },
  { name: 'arg-global-override-cli', upstream: argHistory(historyAt(0, 'ARG G=cli')), dockerfile: 'ARG G=global\nFROM {{BASE}}\nARG G\nRUN echo $G > /g\n', args: { G: 'cli' } },
  { name: 'arg-targetplatform', upstream: argHistory(historyAt(0, 'ARG TARGETPLATFORM=linux/amd64 TARGETOS=linux TARGETARCH=amd64 TARGETVARIANT= BUILDPLATFORM=linux/amd64')), dockerfile: 'FROM {{BASE}}\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\nRUN echo "$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM" > /p\n' },
  { name: 'arg-platform-not-declared', dockerfile: 'FROM {{BASE}}\nRUN echo "[$TARGETPLATFORM]" > /p\n' },
  { name: 'arg-proxy-predefined', dockerfile: 'FROM {{BASE}}\nRUN echo "[$HTTP_PROXY]" > /p\n', args: { HTTP_PROXY: 'http://proxy:3128' } },
  { name: 'arg-proxy-declared', upstream: argHistory(historyAt(0, 'ARG HTTP_PROXY=http://proxy:3128')), dockerfile: 'FROM {{BASE}}\nARG HTTP_PROXY\nRUN echo "[$HTTP_PROXY]" > /p\n', args: { HTTP_PROXY: 'http://proxy:3128' } },
  { name: 'arg-required-error', dockerfile: 'FROM {{BASE}}\nARG X\nENV Y="${X:?X must be set}"\n' },
  { name: 'arg-required-error-no-message', dockerfile: 'FROM {{BASE}}\nARG X\nRUN echo ${X?}\nENV Y=${X:?}\n' },
  { name: 'arg-expansion-modifiers', upstream: { change: 'shell/lex.go accepts ${var-word}, ${var+word} and ${var?word} without the colon', expect: onBaseTime({ ok: true, layers: 0, config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'R1=alt', 'R2=', 'R3=dflt', 'R4=', 'R5=unset'], Cmd: ['sh'], platform: 'linux/amd64' }, history: [{ created_by: 'ARG A=set', empty_layer: true }, { created_by: 'ARG E=', empty_layer: true }, { created_by: 'ENV R1=alt R2= R3=dflt R4= R5=unset', empty_layer: true }], files: [], whiteouts: [] }) }, dockerfile: 'FROM {{BASE}}\nARG A=set\nARG E=\nENV R1=${A:+alt} R2=${E:+alt} R3=${E:-dflt} R4=${E-dflt} R5=${U-unset}\n' },
  { name: 'arg-in-stage-not-leaking', dockerfile: 'FROM {{BASE}} AS one\nARG S=one\nFROM {{BASE}}\nRUN echo "[$S]" > /s\n' },
  { name: 'arg-blank-base-error', dockerfile: 'ARG IMG\nFROM $IMG\n' },
  { name: 'arg-unused-build-arg', dockerfile: 'FROM {{BASE}}\nRUN true\n', args: { UNUSED: 'x' } },
  { name: 'arg-targetstage', upstream: { change: 'platform.go defines TARGETSTAGE (the target stage name) beside the platform args', patch: (r) => { r.history![0].created_by = 'ARG TARGETSTAGE=first'; r.history![1].created_by = r.history![1].created_by.replace('TARGETSTAGE=', 'TARGETSTAGE=first'); r.files!.find((f) => f.path === '/ts')!.content = contentOf('[first]\n'); return r; } }, dockerfile: 'FROM {{BASE}} AS first\nARG TARGETSTAGE\nRUN echo "[$TARGETSTAGE]" > /ts\n' },
];

function contentOf(text: string): string {
  return `${createHash('sha256').update(text).digest('hex').slice(0, 16)}:${Buffer.byteLength(text)}`;
}
