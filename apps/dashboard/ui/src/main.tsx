import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { getJson } from './api.js';
import { BuildPage, BuildsPage, CachePage, QueuesPage, WorkersPage, role } from './pages.js';
import { onLink, path } from './router.js';
import './style.css';

function Page() {
  const p = path.value;
  const build = /^\/builds\/(.+)$/.exec(p);
  if (build) return <BuildPage id={decodeURIComponent(build[1])} />;
  if (p.startsWith('/workers')) return <WorkersPage />;
  if (p.startsWith('/builds')) return <BuildsPage />;
  if (p.startsWith('/cache')) return <CachePage />;
  return <QueuesPage />;
}

function App() {
  useEffect(() => { getJson<{ role: 'read' | 'admin' }>('/api/me').then((me) => { role.value = me.role; }, () => undefined); }, []);
  const links: Array<[string, string]> = [['/', 'Queues'], ['/workers', 'Workers'], ['/builds', 'Builds'], ['/cache', 'Cache']];
  return (
    <>
      <nav>
        <strong>Buildyard</strong>
        {links.map(([href, label]) => <a key={href} href={href} onClick={onLink} class={(href === '/' ? path.value === '/' : path.value.startsWith(href)) ? 'active' : ''}>{label}</a>)}
        <span class="role">{role.value ?? ''}</span>
      </nav>
      <main><Page /></main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
