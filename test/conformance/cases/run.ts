// RUN flags and mounts (BuildKit's dockerfile_mount_test.go, dockerfile_runsecurity_test.go,
// dockerfile_secrets_test.go, dockerfile_ssh_test.go, dockerfile_runnetwork_test.go).
import type { Case } from '../lib/types.js';
import { allHistory, argHistory, chain, chmodParents, copyFlagsHistory, error, FLAG_PREFIX_CHANGE, HEALTH_CHANGE, healthHistory, heredocMode, historyAt } from './upstream.js';

export const cases: Case[] = [
  { name: 'mount-bind-context', dockerfile: 'FROM {{BASE}}\nRUN --mount=target=/ctx cat /ctx/f > /copied\n', files: { f: 'from context\n' } },
  { name: 'mount-bind-source-from-stage', dockerfile: 'FROM {{BASE}} AS src\nRUN echo s > /s\nFROM {{BASE}}\nRUN --mount=type=bind,from=src,source=/s,target=/m cat /m > /got\n' },
  { name: 'mount-bind-rw-discarded', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,target=/ctx,rw touch /ctx/new && ls /ctx > /list\n', files: { f: 'x' } },
  // A read-write bind is a copy of its source as it is: owners, modes, hard links and times kept
  // (not a directory's link count: BuildKit's is an overlayfs mount, whose directories say 1).
  { name: 'mount-bind-rw-keeps-owners', dockerfile: 'FROM {{BASE}} AS s\nCOPY --chown=5:6 d /o\nRUN ln /o/f /o/hard && chown 7:8 /o/sub\nFROM {{BASE}}\nRUN --mount=type=bind,from=s,source=/o,target=/m,rw stat -c "%n %u:%g %a" /m /m/f /m/sub /m/sub/g > /st && stat -c "%n %h" /m/f >> /st\n', files: { 'd/f': 'f\n', 'd/sub/g': 'g\n' } },
  { name: 'mount-bind-readonly-write-fails', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,target=/ctx touch /ctx/new\n', files: { f: 'x' } },
  { name: 'mount-cache', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/cache echo x > /cache/x && ls -ld /cache | cut -c1-10 > /perm\n' },
  { name: 'mount-cache-uid-mode', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/c,uid=1000,gid=1000,mode=0700,sharing=locked,id=mine stat -c "%u %g %a" /c > /st\n' },
  { name: 'mount-cache-sharing-invalid', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/c,sharing=everyone true\n' },
  { name: 'mount-tmpfs', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=tmpfs,target=/tmpfs touch /tmpfs/x && grep -c " /tmpfs tmpfs" /proc/mounts > /count\n' },
  { name: 'mount-secret-file', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=token wc -c < /run/secrets/token > /len\n', secrets: { token: 'abcdef' } },
  { name: 'mount-secret-target', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=token,target=/s,mode=0440,uid=1 stat -c "%a %u" /s > /st\n', secrets: { token: 'abcdef' } },
  { name: 'mount-secret-required-missing', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=absent,required true\n' },
  { name: 'mount-ssh-optional-unforwarded', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=ssh,target=/s test ! -e /s && touch /ok\n' },
  { name: 'mount-ssh-required-unforwarded', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=ssh,required=true true\n' },
  { name: 'mount-ssh-id-required-unforwarded', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=ssh,id=deploy,required true\n' },
  { name: 'mount-ssh-env-unforwarded', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=ssh sh -c \'echo "[$SSH_AUTH_SOCK]" > /sock\'\n' },
  { name: 'mount-ssh-two-sockets-env', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=ssh,id=a,target=/first --mount=type=ssh,id=b sh -c \'echo "[$SSH_AUTH_SOCK]" > /sock\'\n' },
  { name: 'mount-ssh-env-preset', dockerfile: 'FROM {{BASE}}\nENV SSH_AUTH_SOCK=/mine\nRUN --mount=type=ssh sh -c \'echo "[$SSH_AUTH_SOCK]" > /sock\'\n' },
  { name: 'mount-secret-optional-missing', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && touch /ok\n' },
  { name: 'mount-unknown-type', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cahce,target=/c true\n' },
  { name: 'mount-unknown-key', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,traget=/c true\n' },
  { name: 'mount-missing-target', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache true\n' },
  { name: 'run-unknown-flag', upstream: { change: FLAG_PREFIX_CHANGE, expect: error('unknown flag: --mout (did you mean mount?)') }, dockerfile: 'FROM {{BASE}}\nRUN --mout=type=cache,target=/c true\n' },
  { name: 'run-network-none', dockerfile: 'FROM {{BASE}}\nRUN --network=none ip link | grep -c "^[0-9]" > /links\n' },
  { name: 'run-network-host', dockerfile: 'FROM {{BASE}}\nRUN --network=host true\n' },
  { name: 'run-network-invalid', dockerfile: 'FROM {{BASE}}\nRUN --network=bridge true\n' },
  { name: 'run-security-invalid', upstream: { change: 'RUN --security is in the stable channel; commands_runsecurity.go: security %q is not valid', expect: error('security "privileged" is not valid') }, dockerfile: 'FROM {{BASE}}\nRUN --security=privileged true\n' },
  { name: 'run-hostname-default', dockerfile: 'FROM {{BASE}}\nRUN hostname > /h\n' },
  { name: 'run-hostname-build-arg', dockerfile: 'FROM {{BASE}}\nRUN hostname > /h\n', args: { BUILDKIT_SANDBOX_HOSTNAME: 'myhost' } },
  { name: 'run-env-visible', dockerfile: 'FROM {{BASE}}\nENV E=1\nARG A=2\nRUN env | grep -E "^(E|A|PATH|HOME|HOSTNAME)=" | sort > /env\n' },
  { name: 'run-user', dockerfile: 'FROM {{BASE}}\nUSER daemon\nRUN id > /tmp/id\n' },
  { name: 'run-user-unknown', dockerfile: 'FROM {{BASE}}\nUSER nosuchuser\nRUN true\n' },
];
