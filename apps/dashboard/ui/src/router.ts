import { signal } from '@preact/signals';

/** The current path; links push history entries instead of reloading the page. */
export const path = signal(location.pathname);
addEventListener('popstate', () => { path.value = location.pathname; });

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  path.value = location.pathname;
}

export function onLink(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement);
  if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? '/');
}
