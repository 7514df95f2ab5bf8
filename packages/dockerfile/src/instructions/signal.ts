// STOPSIGNAL values as moby/sys/signal ParseSignal accepts them on Linux: a non-zero number, or
// a signal name with or without "SIG", in any case.

const NAMES = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL',
  'PIPE', 'POLL', 'PROF', 'PWR', 'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP',
  'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ', 'RTMIN', 'RTMAX',
  ...Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`),
  ...Array.from({ length: 14 }, (_, i) => `RTMAX-${14 - i}`),
]);

/** True when ParseSignal accepts `raw`. */
export function validSignal(raw: string): boolean {
  if (/^[-+]?\d+$/.test(raw)) return Number(raw) !== 0 && Math.abs(Number(raw)) <= 2 ** 31;
  const name = raw.toUpperCase();
  return NAMES.has(name.startsWith('SIG') ? name.slice(3) : name);
}
