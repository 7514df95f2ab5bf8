// Preloaded into a child (NODE_OPTIONS=--import) whose peak memory a benchmark reads: at exit it
// writes the process's VmHWM (kB) to $BENCH_PEAK_RSS_FILE. Node reports no rusage of a child,
// and GNU time is not among the packages setup.sh installs.
import { readFileSync, writeFileSync } from 'node:fs';

process.on('exit', () => {
  const peak = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (peak && process.env.BENCH_PEAK_RSS_FILE) writeFileSync(process.env.BENCH_PEAK_RSS_FILE, peak[1]);
});
