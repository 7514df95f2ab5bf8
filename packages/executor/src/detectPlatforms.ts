// Which platforms this host can run: natively (the kernel's own arch, plus 32-bit compat modes
// the kernel really accepts) and emulated (binfmt_misc QEMU handlers usable inside containers).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPlatform, parsePlatform } from '@buildyard/oci';

export interface Platforms {
  native: string[];
  emulated: string[];
}

export interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: string;
}

const qemuArchToPlatform: Record<string, string[]> = {
  x86_64: ['linux/amd64'],
  i386: ['linux/386'],
  aarch64: ['linux/arm64'],
  arm: ['linux/arm/v7', 'linux/arm/v6'],
  riscv64: ['linux/riscv64'],
  ppc64le: ['linux/ppc64le'],
  s390x: ['linux/s390x'],
  mips64el: ['linux/mips64le'],
  mips64: ['linux/mips64'],
  loongarch64: ['linux/loong64'],
};

const nodeArchToPlatform: Record<string, string> = {
  x64: 'linux/amd64',
  arm64: 'linux/arm64',
  arm: 'linux/arm/v7',
  ia32: 'linux/386',
  riscv64: 'linux/riscv64',
  ppc64: 'linux/ppc64le',
  s390x: 'linux/s390x',
  loong64: 'linux/loong64',
};

/** Normalises a platform the way containerd does (`arm64` -> `linux/arm64`): graph's rules, as everywhere. */
export function normalizePlatform(platform: string): string {
  return formatPlatform(parsePlatform(platform));
}

export function parseBinfmtEntry(name: string, text: string): BinfmtEntry {
  const lines = text.split('\n');
  const field = (key: string) => lines.find((l) => l.startsWith(key))?.slice(key.length).trim() ?? '';
  return { name, enabled: lines[0]?.trim() === 'enabled', interpreter: field('interpreter '), flags: field('flags:') };
}

/** Platforms emulated by usable binfmt entries: enabled, F flag (interpreter opened at
 *  registration, so it works inside a container's rootfs), interpreter present. */
export function platformsFromBinfmt(entries: BinfmtEntry[], interpreterExists: (path: string) => boolean): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const m = /^qemu-(.+)$/.exec(e.name);
    const platforms = m ? qemuArchToPlatform[m[1] as string] : undefined;
    if (!platforms || !e.enabled || !e.flags.includes('F') || !interpreterExists(e.interpreter)) continue;
    for (const p of platforms) if (!out.includes(p)) out.push(p);
  }
  return out;
}

let cached: Platforms | undefined;

export function detectPlatforms(options: { refresh?: boolean } = {}): Platforms {
  if (cached && !options.refresh) return cached;
  const hostPlatform = nodeArchToPlatform[process.arch] ?? `linux/${process.arch}`;
  const native = [hostPlatform];
  for (const [platform, probe] of compatProbes[hostPlatform] ?? []) {
    if (runsProbe(probe)) native.push(platform);
  }
  const emulated = platformsFromBinfmt(readBinfmtEntries(), (p) => {
    try { accessSync(p, constants.X_OK); return true; } catch { return false; }
  }).filter((p) => !native.includes(p));
  cached = { native, emulated };
  return cached;
}

/** True when `platform` is not native to this host (it then needs a QEMU binfmt handler). */
export function needsEmulation(platform: string, platforms: Platforms = detectPlatforms()): boolean {
  return !platforms.native.includes(normalizePlatform(platform));
}

/** True when this host can run `platform` at all, natively or emulated. */
export function canRunPlatform(platform: string, platforms: Platforms = detectPlatforms()): boolean {
  const p = normalizePlatform(platform);
  return platforms.native.includes(p) || platforms.emulated.includes(p);
}

function readBinfmtEntries(): BinfmtEntry[] {
  const dir = '/proc/sys/fs/binfmt_misc';
  try {
    if (readFileSync(join(dir, 'status'), 'utf8').trim() !== 'enabled') return [];
    return readdirSync(dir)
      .filter((n) => n !== 'status' && n !== 'register')
      .map((n) => parseBinfmtEntry(n, readFileSync(join(dir, n), 'utf8')));
  } catch {
    return [];
  }
}

// A compat mode (386 on amd64, arm on arm64) is native only if the kernel really executes such
// binaries (CONFIG_IA32_EMULATION can be off or disabled at boot), so run a tiny exit(0) program,
// as BuildKit's archutil does.
function runsProbe(elf: Buffer): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-archprobe-'));
  try {
    const file = join(dir, 'probe');
    writeFileSync(file, elf, { mode: 0o755 });
    return spawnSync(file, { timeout: 5000, stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A minimal 32-bit little-endian ELF executable: one PT_LOAD segment holding `code`. */
function elf32(machine: number, flags: number, code: number[]): Buffer {
  const base = 0x08048000;
  const size = 52 + 32 + code.length;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0], 0);
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(machine, 18);
  b.writeUInt32LE(1, 20);
  b.writeUInt32LE(base + 84, 24); // entry
  b.writeUInt32LE(52, 28); // phoff
  b.writeUInt32LE(flags, 36);
  b.writeUInt16LE(52, 40); // ehsize
  b.writeUInt16LE(32, 42); // phentsize
  b.writeUInt16LE(1, 44); // phnum
  b.writeUInt32LE(1, 52); // PT_LOAD
  b.writeUInt32LE(0, 56);
  b.writeUInt32LE(base, 60);
  b.writeUInt32LE(base, 64);
  b.writeUInt32LE(size, 68);
  b.writeUInt32LE(size, 72);
  b.writeUInt32LE(5, 76); // R+X
  b.writeUInt32LE(0x1000, 80);
  b.set(code, 84);
  return b;
}

const compatProbes: Record<string, [string, Buffer][]> = {
  // xor ebx,ebx; xor eax,eax; inc eax; int 0x80  => exit(0)
  'linux/amd64': [['linux/386', elf32(3, 0, [0x31, 0xdb, 0x31, 0xc0, 0x40, 0xcd, 0x80])]],
  // mov r0,#0; mov r7,#1; svc #0  => exit(0), EABI5
  'linux/arm64': [['linux/arm/v7', elf32(40, 0x05000000, [0x00, 0x00, 0xa0, 0xe3, 0x01, 0x70, 0xa0, 0xe3, 0x00, 0x00, 0x00, 0xef])]],
};
