import { createHash, timingSafeEqual } from 'node:crypto';

/** `metrics` reads `/metrics` only (a Prometheus or KEDA scraper): no tenant's builds. */
export type Role = 'metrics' | 'read' | 'admin';

export interface DashboardTokens {
  readToken: string;
  adminToken: string;
  metricsToken?: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time token check; an empty configured token never matches. */
function matches(given: string, expected: string): boolean {
  if (!expected || !given) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/** The role a token grants, or null. The admin token also grants reading. */
export function roleForToken(token: string | undefined, tokens: DashboardTokens): Role | null {
  if (!token) return null;
  if (matches(token, tokens.adminToken)) return 'admin';
  if (matches(token, tokens.readToken)) return 'read';
  if (matches(token, tokens.metricsToken ?? '')) return 'metrics';
  return null;
}

/** The session cookie is signed with a key derived from the tokens, so rotating a token ends old sessions. */
export function cookieSecret(tokens: DashboardTokens): string {
  return createHash('sha256').update(`buildyard-dashboard\0${tokens.readToken}\0${tokens.adminToken}`).digest('hex');
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}
