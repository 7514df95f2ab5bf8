#!/usr/bin/env bash
# Installs every system part Buildyard needs on Debian, registers qemu binfmt handlers,
# and installs the npm workspaces. Idempotent: re-running only does what is missing.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

[ "$(id -u)" -eq 0 ] || die "run as root (apt-get, binfmt_misc and runc need it): sudo bash infra/dev/setup.sh"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu; install the packages listed in it by hand"
command -v node >/dev/null || die "node not found: install Node.js 20 first"

host_arch=$(dpkg --print-architecture)
foreign_arch=arm64
[ "$host_arch" = arm64 ] && foreign_arch=amd64

packages=(redis-server runc qemu-user-static binfmt-support busybox-static docker-registry
  skopeo umoci buildah chromium iproute2 socat pigz zstd xz-utils bzip2 util-linux procps nftables iptables conntrack openssh-client git
  g++ make python3)  # node-gyp builds the native addons (zstd-napi, the snapshot package's mount calls) at npm ci

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! dpkg --print-foreign-architectures | grep -qx "$foreign_arch"; then
  say "adding dpkg architecture $foreign_arch (for the foreign busybox-static base image)"
  dpkg --add-architecture "$foreign_arch"
  need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ -n "${need_update:-}" ]; then
  say "apt-get update"
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  # Services are started by tests and `buildyard up`, never at install time.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  # The Debian packages start their daemons; Buildyard runs its own instances.
  for svc in redis-server docker-registry; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
  done
  pkill -x redis-server 2>/dev/null || true
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
else
  say "system packages already installed"
fi

# The foreign-architecture busybox is kept as a .deb under the state dir, not installed
# (installing it would replace the host's busybox). testkit extracts it when seeding.
debs_dir="${BUILDYARD_DEBS_DIR:-/var/cache/buildyard/debs}"
mkdir -p "$debs_dir"
for arch in amd64 arm64; do
  if ! ls "$debs_dir"/busybox-static_*_"$arch".deb >/dev/null 2>&1; then
    say "downloading busybox-static:$arch into $debs_dir"
    (cd "$debs_dir" && apt-get download -qq "busybox-static:$arch")
  fi
done

# Docker's default seccomp profile, which RUN steps run under (executor's seccompProfile.ts):
# taken from Debian's copy of the moby sources (only that file is extracted; nothing of the
# package is installed), so it stays byte-for-byte Docker's.
seccomp_profile=/usr/share/buildyard/seccomp/docker-default.json
if [ ! -s "$seccomp_profile" ]; then
  say "extracting Docker's default seccomp profile into $seccomp_profile"
  mkdir -p "$(dirname "$seccomp_profile")"
  (cd "$debs_dir" && { ls golang-github-docker-docker-dev_*.deb >/dev/null 2>&1 || apt-get download -qq golang-github-docker-docker-dev; } \
    && dpkg-deb --fsys-tarfile golang-github-docker-docker-dev_*.deb \
    | tar -xO ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json) > "$seccomp_profile.partial" \
    && mv "$seccomp_profile.partial" "$seccomp_profile" \
    || die "cannot extract Docker's seccomp profile from golang-github-docker-docker-dev: check apt sources"
fi

# binfmt_misc with the F (fix-binary) flag so emulated binaries work inside containers whose
# rootfs has no qemu binary of its own, and P (preserve argv[0]) so multi-call binaries such as
# busybox, which re-exec themselves through /proc/self/exe, still see their applet name.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || say "warning: cannot mount binfmt_misc; emulated platforms will be unavailable"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ]; then
  if [ "$host_arch" = amd64 ]; then qemu_name=qemu-aarch64; else qemu_name=qemu-x86_64; fi
  entry=/proc/sys/fs/binfmt_misc/$qemu_name
  if [ -e "$entry" ] && ! grep -qE '^flags: [A-Z]*P' "$entry" || { [ -e "$entry" ] && ! grep -qE '^flags: [A-Z]*F' "$entry"; }; then
    say "re-registering $qemu_name with the P and F flags"
    echo -1 > "$entry"
  fi
  if [ ! -e "$entry" ]; then
    if [ "$qemu_name" = qemu-aarch64 ]; then
      magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
      mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    else
      magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00'
      mask='\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    fi
    say "registering binfmt handler $qemu_name (flags POCF)"
    printf ':%s:M::%s:%s:/usr/bin/%s-static:POCF' "$qemu_name" "$magic" "$mask" "$qemu_name" > /proc/sys/fs/binfmt_misc/register
  else
    say "binfmt handler $qemu_name already registered with P and F"
  fi
fi

cd "$repo_root"
if [ -f package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
else
  say "npm install (no lockfile yet)"
  npm install --no-audit --no-fund
fi
say "done"
