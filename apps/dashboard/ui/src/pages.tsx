import { memo } from 'preact/compat';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { signal } from '@preact/signals';
import type { BuildDetail, BuildList, CacheView, PlatformTenantRow, ProgressView, QueueView, StageView, WorkerView } from '../../src/api/types.js';
import { LogLines } from '../../src/api/LogLines.js';
import { ago, bytes, duration, getJson, postJson } from './api.js';
import { Chart } from './Chart.js';
import { onLink } from './router.js';
import { usePoll } from './usePoll.js';

/** Set once from /api/me; admin-only buttons are hidden for read tokens (the server enforces it too). */
export const role = signal<'read' | 'admin' | null>(null);

function Err(props: { error: string }) {
  return props.error ? <p class="error" role="alert">{props.error}</p> : null;
}

export function QueuesPage() {
  const { data, error } = usePoll(() => getJson<{ queues: QueueView[]; platforms: PlatformTenantRow[]; sampleIntervalMs: number }>('/api/queues'), 2000);
  const queues = data?.queues ?? [];
  return (
    <section>
      <h1>Queues</h1>
      <Err error={error} />
      <h2>Per platform and tenant</h2>
      <p class="note">Waiting counts every stage that could run now and does not, also those held back before any queue (by the tenant limit) and why.</p>
      <table data-testid="waiting">
        <thead><tr><th>platform</th><th>tenant</th><th>waiting</th><th>why</th><th>running</th><th>oldest wait</th><th>failed builds (1 h)</th><th>failed stages (1 h)</th></tr></thead>
        <tbody>
          {(data?.platforms ?? []).map((r) => (
            <tr key={`${r.platform} ${r.tenant}`} data-platform={r.platform} data-tenant={r.tenant}>
              <td>{r.platform}</td><td>{r.tenant}</td>
              <td class="num" data-field="waiting">{r.waiting}</td>
              <td data-field="why">{r.why.map((w) => <div key={w}>{w}</div>)}</td>
              <td class="num" data-field="running">{r.running}</td><td data-field="oldest">{duration(r.oldestWaitMs)}</td>
              <td class="num" data-field="failed-builds">{r.failedBuilds}</td><td class="num" data-field="failed-stages">{r.failedStages}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Stage queues</h2>
      <p class="note">Depth history: last hour, sampled in this dashboard's memory every {((data?.sampleIntervalMs ?? 5000) / 1000).toFixed(1)} s.</p>
      <table data-testid="queues">
        <thead><tr><th>queue</th><th>platform</th><th>class</th><th>waiting</th><th>active</th><th>oldest wait</th><th>throughput /min</th><th>failed jobs (1 h)</th></tr></thead>
        <tbody>
          {queues.map((q) => (
            <tr key={q.name} data-queue={q.name}>
              <td>{q.name}</td><td>{q.platform || '–'}</td><td>{q.kind === 'worker' ? `worker ${q.workerId}` : q.kind}</td>
              <td class="num" data-field="waiting">{q.waiting}</td><td class="num" data-field="active">{q.active}</td>
              <td>{duration(q.oldestWaitMs)}</td><td class="num">{q.throughputPerMin}</td><td class="num">{q.failedLastHour}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="charts">
        {queues.filter((q) => q.kind !== 'worker').map((q) => (
          <figure key={q.name}>
            <figcaption>{q.platform} ({q.kind})</figcaption>
            <Chart testId={`chart-${q.name}`} times={q.history.map((s) => s.t)} series={[
              { label: 'waiting', color: '#d97706', values: q.history.map((s) => s.waiting) },
              { label: 'active', color: '#2563eb', values: q.history.map((s) => s.active) },
              { label: 'done/min', color: '#16a34a', values: q.history.map((s) => s.throughputPerMin) },
            ]} />
          </figure>
        ))}
      </div>
    </section>
  );
}

export function WorkersPage() {
  const { data, error, reload } = usePoll(() => getJson<{ workers: WorkerView[] }>('/api/workers'), 2000);
  const [opError, setOpError] = useState('');
  const drain = async (id: string) => {
    if (!confirm(`Drain worker ${id}? It finishes its running stages and takes no new ones.`)) return;
    try { await postJson(`/api/workers/${encodeURIComponent(id)}/drain`); setOpError(''); } catch (e) { setOpError((e as Error).message); }
    reload();
  };
  return (
    <section>
      <h1>Workers</h1>
      <Err error={error || opError} />
      <table data-testid="workers">
        <thead><tr><th>id</th><th>native</th><th>emulated</th><th>load</th><th>running stages</th><th>disk</th><th>last heartbeat</th><th>state</th><th /></tr></thead>
        <tbody>
          {(data?.workers ?? []).map((w) => (
            <tr key={w.id} data-worker={w.id}>
              <td>{w.id}</td><td>{w.nativePlatforms.join(', ') || '–'}</td><td>{w.emulatedPlatforms.join(', ') || '–'}</td>
              <td>{w.running}/{w.capacity} ({Math.round(w.load * 100)}%)</td>
              <td>{w.runningStages.map((s) => <div key={`${s.buildId}${s.stageId}`}><a href={`/builds/${s.buildId}`} onClick={onLink}>{s.stageId}</a> {s.platform}</div>)}</td>
              <td data-field="disk" data-bytes={w.disk?.totalBytes ?? ''} title={w.disk ? `measured ${ago(w.disk.measuredMs)}` : 'not measured yet'}>
                {w.disk ? <>{bytes(w.disk.totalBytes)}<div class="meta">{Object.entries(w.disk.parts).map(([k, v]) => `${k} ${bytes(v)}`).join(' · ')}</div></> : '…'}
              </td><td>{ago(w.lastHeartbeat)}</td>
              <td data-field="state">{w.draining ? <span class="badge warn">draining</span> : <span class="badge ok">active</span>}</td>
              <td>{role.value === 'admin' && !w.draining ? <button onClick={() => void drain(w.id)}>drain</button> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function BuildsPage() {
  const [status, setStatus] = useState('');
  const [tenant, setTenant] = useState('');
  const [platform, setPlatform] = useState('');
  const qs = new URLSearchParams({ ...(status && { status }), ...(tenant && { tenant }), ...(platform && { platform }) }).toString();
  const { data, error } = usePoll(() => getJson<BuildList>(`/api/builds${qs ? `?${qs}` : ''}`), 3000, [qs]);
  return (
    <section>
      <h1>Builds</h1>
      <div class="filters">
        <select aria-label="status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="">any status</option>
          {['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <input aria-label="tenant" placeholder="tenant" value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} />
        <input aria-label="platform" placeholder="platform, e.g. linux/arm64" value={platform} onInput={(e) => setPlatform((e.target as HTMLInputElement).value)} />
      </div>
      <Err error={error} />
      {data?.scanLimitReached ? <p class="note" data-testid="scan-limit">Only the newest builds were searched for this filter; older ones were not looked at.</p> : null}
      <table data-testid="builds">
        <thead><tr><th>build</th><th>status</th><th>tenant</th><th>images</th><th>platforms</th><th>started</th><th>queued</th><th>ran</th><th>total</th><th>cache hits</th><th>error</th></tr></thead>
        <tbody>
          {(data?.builds ?? []).map((b) => (
            <tr key={b.buildId} data-build={b.buildId}>
              <td><a href={`/builds/${b.buildId}`} onClick={onLink}>{b.buildId}</a></td>
              <td data-field="status"><span class={`badge ${b.status}`}>{b.status}</span></td><td data-field="tenant">{b.tenant}</td>
              <td data-field="images">{b.images.join(', ') || '–'}</td><td data-field="platforms">{b.platforms.join(', ')}</td>
              <td>{ago(b.createdMs)}</td><td data-field="queued">{duration(b.queueMs)}</td><td data-field="ran">{duration(b.runMs)}</td><td>{duration(b.durationMs)}</td>
              <td>{b.cacheHitRatio === null ? '–' : `${Math.round(b.cacheHitRatio * 100)}% (${b.verticesCached}/${b.verticesTotal})`}</td>
              <td data-field="error" class="error" title={b.error}>{b.errorLine}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function StageCard(props: { s: StageView }) {
  const s = props.s;
  return (
    <div class={`stage ${s.status}`} data-stage={s.stageId} data-name={s.name}>
      <strong data-field="stage-name">{s.name}</strong> <span class="meta">{s.stageId}{s.runsAs !== s.platform ? ` · runs as ${s.runsAs}` : ''}</span> <span class="badge">{s.status}</span>
      {s.cached ? <span class="badge ok">cached</span> : null}
      {s.emulated === true ? <span class="badge warn" data-field="execution">emulated</span> : s.emulated === false ? <span class="badge" data-field="execution">native</span> : null}
      <div class="meta">worker {s.worker ?? '–'} · {duration(s.durationMs)}{s.attempts > 1 ? ` · attempt ${s.attempts}` : ''}</div>
      {s.dependsOn.length ? <div class="meta">after {s.dependsOn.join(', ')}</div> : null}
      {s.waiting ? <div class="meta" data-field="waiting">waiting {duration(Math.max(0, Date.now() - s.waiting.sinceMs))}: {s.waiting.why}</div> : null}
      {s.error ? <div class="error">{s.error}</div> : null}
      <ul>{s.vertices.map((v) => <li key={v.digest}>{v.name} — {v.cached ? 'cached' : `${v.status} ${duration(v.durationMs)}${v.emulated === null ? '' : v.emulated ? ' (emulated)' : ' (native)'}`}</li>)}</ul>
    </div>
  );
}

/** Stages in columns by dependency depth: a readable DAG without a layout library. */
function Dag(props: { stages: StageView[] }) {
  const columns = useMemo(() => {
    const depth = new Map<string, number>();
    const byId = new Map(props.stages.map((s) => [s.stageId, s]));
    const d = (id: string, seen = new Set<string>()): number => {
      if (depth.has(id)) return depth.get(id)!;
      if (seen.has(id)) return 0;
      seen.add(id);
      const s = byId.get(id);
      const v = s && s.dependsOn.length ? 1 + Math.max(...s.dependsOn.map((x) => d(x, seen))) : 0;
      depth.set(id, v);
      return v;
    };
    const cols: StageView[][] = [];
    for (const s of props.stages) (cols[d(s.stageId)] ??= []).push(s);
    return cols;
  }, [props.stages]);
  return <div class="dag">{columns.map((col, i) => <div class="col" key={i}>{col.map((s) => <StageCard key={s.stageId} s={s} />)}</div>)}</div>;
}

/**
 * The live log: lines are appended to the <pre> as events arrive and never re-rendered, so what
 * the page once showed stays where it was (the polls re-rendering the page do not touch it).
 */
const LogTail = memo(function LogTail(props: { id: string }) {
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = pre.current!;
    el.textContent = '';
    const model = new LogLines();
    const append = (lines: string[]) => {
      if (lines.length === 0) return;
      const following = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
      el.append(lines.join(''));
      if (following) el.scrollTop = el.scrollHeight;
    };
    const es = new EventSource(`/api/builds/${encodeURIComponent(props.id)}/progress`);
    es.onmessage = (m) => append(model.push(JSON.parse(m.data as string) as ProgressView));
    es.addEventListener('end', () => { es.close(); append(model.end()); });
    return () => es.close();
  }, [props.id]);
  return <pre class="log" data-testid="log" ref={pre} />;
});

export function BuildPage(props: { id: string }) {
  const { data, error, reload } = usePoll(() => getJson<BuildDetail>(`/api/builds/${encodeURIComponent(props.id)}`), 2000, [props.id]);
  const [opError, setOpError] = useState('');
  const cancel = async () => {
    if (!confirm(`Cancel build ${props.id}?`)) return;
    try { await postJson(`/api/builds/${encodeURIComponent(props.id)}/cancel`); setOpError(''); } catch (e) { setOpError((e as Error).message); }
    reload();
  };
  const s = data?.summary;
  const running = data?.scheduler?.status === 'running';
  return (
    <section>
      <h1>Build {props.id}</h1>
      <Err error={error || opError} />
      {data?.warnings.map((w) => <p class="note" key={w}>{w}</p>)}
      <p>
        status <span class="badge" data-testid="build-status">{s?.status ?? data?.scheduler?.status ?? '…'}</span>
        {s ? <> · tenant {s.tenant} · {duration(s.durationMs)} · cache hits {s.verticesCached}/{s.verticesTotal}</> : null}
        {role.value === 'admin' && running ? <> <button onClick={() => void cancel()}>cancel build</button></> : null}
      </p>
      {s?.error ? <p class="error">{s.error}</p> : null}
      {s?.pushed.length ? <><h2>Pushed</h2><ul data-testid="pushed">{s.pushed.map((p) => <li key={p}><code>{p}</code></li>)}</ul></> : null}
      {s?.digest ? <p>digest <code>{s.digest}</code></p> : null}
      {(data?.platforms ?? []).map((p) => (
        <div key={p.platform} data-platform={p.platform}>
          <h2>{p.platform}</h2>
          <Dag stages={p.stages} />
        </div>
      ))}
      <h2>Log</h2>
      <LogTail key={props.id} id={props.id} />
    </section>
  );
}

export function CachePage() {
  const { data, error, reload } = usePoll(() => getJson<CacheView>('/api/cache'), 5000);
  const [msg, setMsg] = useState('');
  const prune = async (tenant: string) => {
    const keep = prompt(`Prune ${tenant}: keep at most how many MiB? (0 removes everything not in use)`, '0');
    if (keep === null) return;
    const mib = Number(keep);
    if (!(mib >= 0)) { setMsg('enter a number of MiB >= 0'); return; }
    try {
      const r = await postJson<{ removed: number; bytes: number }>(`/api/cache/${encodeURIComponent(tenant)}/prune`, mib === 0 ? { all: true } : { keepBytes: mib * 1024 * 1024 });
      setMsg(`${tenant}: removed ${r.removed} entries, ${bytes(r.bytes)}`);
    } catch (e) { setMsg((e as Error).message); }
    reload();
  };
  return (
    <section>
      <h1>Cache</h1>
      <Err error={error} />
      {msg ? <p class="note">{msg}</p> : null}
      <table data-testid="cache">
        <thead><tr><th>tenant</th><th>store</th><th>entries</th><th>size</th><th>by platform</th><th /></tr></thead>
        <tbody>
          {(data?.tenants ?? []).map((t) => (
            <tr key={t.tenant} data-tenant={t.tenant}>
              <td>{t.tenant}</td><td>{data?.store}</td><td class="num">{t.entries}</td>
              <td>{bytes(t.bytes)}{t.examined < t.entries ? <span class="meta" data-field="examined"> of the {t.examined} most recently used</span> : null}</td>
              <td>{Object.entries(t.byPlatform).map(([p, v]) => <div key={p}>{p}: {v.entries} · {bytes(v.bytes)}</div>)}</td>
              <td>{role.value === 'admin' ? <button onClick={() => void prune(t.tenant)}>prune</button> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Hit ratio (finished builds, 5-minute buckets)</h2>
      <Chart testId="hit-ratio" times={(data?.hitRatio ?? []).map((h) => h.t)} series={[{ label: 'hit ratio', color: '#16a34a', values: (data?.hitRatio ?? []).map((h) => h.ratio) }]} />
      <h2>Largest entries</h2>
      {(data?.tenants ?? []).map((t) => (
        <details key={t.tenant} open>
          <summary>{t.tenant}</summary>
          <table>
            <thead><tr><th>size</th><th>description</th><th>platform</th><th>used</th><th>last used</th></tr></thead>
            <tbody>{t.largest.map((e) => <tr key={e.key}><td>{bytes(e.size)}</td><td>{e.description}</td><td>{e.platform}</td><td class="num">{e.usageCount}</td><td>{ago(e.lastUsedMs)}</td></tr>)}</tbody>
          </table>
        </details>
      ))}
    </section>
  );
}
