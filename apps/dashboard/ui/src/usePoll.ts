import { useEffect, useState } from 'preact/hooks';

/** Loads `load()` now and every `ms` while mounted; `reload` forces a refresh. */
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): { data: T | undefined; error: string; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    const run = () => load().then((d) => { if (alive) { setData(d); setError(''); } }, (e: Error) => { if (alive) setError(e.message); });
    run();
    const t = setInterval(run, ms);
    return () => { alive = false; clearInterval(t); };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}
