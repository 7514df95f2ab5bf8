// WWW-Authenticate parsing (RFC 7235 challenges) as the distribution token spec uses it:
// `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`.

export interface AuthChallenge {
  scheme: string; // lowercased: 'bearer' | 'basic' | ...
  params: Record<string, string>;
}

/** Parses one header value that may hold several challenges. */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => { while (i < s.length && /[\s,]/.test(s[i])) i++; };
  const token = () => { const m = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/.exec(s.slice(i)); if (!m) return ''; i += m[0].length; return m[0]; };
  while (i < s.length) {
    skipWs();
    const scheme = token();
    if (!scheme) break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    // auth-params: name=value pairs separated by commas, until the next scheme token.
    for (;;) {
      while (i < s.length && /[\s]/.test(s[i])) i++;
      const save = i;
      const name = token();
      if (!name) { i = save; break; }
      while (i < s.length && s[i] === ' ') i++;
      if (s[i] !== '=') { i = save; break; } // the next challenge's scheme
      i++;
      while (i < s.length && s[i] === ' ') i++;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        value = token();
        while (i < s.length && s[i] === '=') { value += '='; i++; } // token68 padding
      }
      challenge.params[name.toLowerCase()] = value;
      while (i < s.length && s[i] === ' ') i++;
      if (s[i] === ',') i++;
    }
  }
  return out;
}
