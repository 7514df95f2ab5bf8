// The one .dockerignore / --exclude matcher (context walk, COPY --exclude, cache keys): a
// hand-written port of moby/patternmatcher (and its ignorefile.ReadAll) instead of
// @balena/dockerignore: Docker's matcher has match-type shortcuts (exact / prefix `x/**` /
// suffix `**/x`) whose quirks we must reproduce byte for byte, it evaluates parent directories
// per pattern, and a context walker needs `mayMatchInside` to prune excluded directories
// safely — none of which the library exposes.

import { GlobProgram } from './globProgram.js';

/**
 * Error raised for a syntactically invalid .dockerignore or --exclude pattern. The message starts
 * with BuildKit's words (`invalid excludepatterns: [p1 p2]: syntax error in pattern`), then says
 * which pattern and why.
 */
export class DockerignorePatternError extends Error {
  constructor(readonly pattern: string, readonly reason: string, patterns: readonly string[] = [pattern]) {
    const list = patterns.join(' ');
    const cause = reason.startsWith('illegal exclusion pattern') ? 'illegal exclusion pattern: "!"' : 'syntax error in pattern';
    super(`invalid excludepatterns: [${list.length > 200 ? list.slice(0, 200) + '…' : list}]: ${cause}; fix or remove the pattern ${JSON.stringify(pattern.slice(0, 100))} (${reason})`);
    this.name = 'DockerignorePatternError';
  }
}

/** Go's path.Clean for slash-separated paths. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const parts = p.split('/');
  const out: string[] = [];
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  if (rooted) return '/' + joined;
  return joined === '' ? '.' : joined;
}

/** Parses .dockerignore text the way Docker's ignorefile.ReadAll does. */
export function parseDockerignore(text: string): string[] {
  const lines = text.split(/\r?\n/);
  const excludes: string[] = [];
  lines.forEach((raw, i) => {
    let line = i === 0 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw;
    // Comments are recognised before trimming, exactly like Docker.
    if (line.startsWith('#')) return;
    line = line.trim();
    if (line === '') return;
    const invert = line[0] === '!';
    if (invert) line = line.slice(1).trim();
    if (line.length > 0) {
      line = cleanPath(line);
      if (line.length > 1 && line[0] === '/') line = line.slice(1);
    }
    excludes.push(invert ? '!' + line : line);
  });
  return excludes;
}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

interface CompiledPattern {
  cleaned: string;
  exclusion: boolean;
  dirs: string[];
  matchType: MatchType;
  regexp?: { test(path: string): boolean };
}

const REGEXP_SPECIALS = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

// Mirrors Pattern.compile in moby/patternmatcher (separator "/").
function compilePattern(cleaned: string): Pick<CompiledPattern, 'matchType' | 'regexp'> {
  let re = '^';
  let matchType: MatchType = 'exact';
  const chars = Array.from(cleaned);
  let pos = 0;
  const peek = (): string | undefined => chars[pos];
  for (let i = 0; pos < chars.length; i++) {
    const ch = chars[pos++];
    if (ch === '*') {
      if (peek() === '*') {
        pos++;
        if (peek() === '/') pos++;
        if (peek() === undefined) {
          if (matchType === 'exact') matchType = 'prefix';
          else {
            re += '.*';
            matchType = 'regexp';
          }
        } else {
          re += '(.*/)?';
          matchType = 'regexp';
        }
        if (i === 0) matchType = 'suffix';
      } else {
        re += '[^/]*';
        matchType = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      matchType = 'regexp';
    } else if (REGEXP_SPECIALS.has(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      if (peek() !== undefined) re += '\\' + chars[pos++];
      else re += '\\\\';
    } else if (ch === '[' || ch === ']') {
      re += ch;
      matchType = 'regexp';
    } else {
      // Like Docker, other characters go into the regexp as they are (so `^` in a class works).
      re += ch;
    }
  }
  if (matchType !== 'regexp') return { matchType };
  try {
    // A RegExp with two or more unbounded repetitions can backtrack for minutes on a long
    // name (an attacker's pattern; Go's regexp cannot): those run on GlobProgram instead.
    const repetitions = re.replace(/\\./g, '').split('*').length - 1;
    return { matchType, regexp: repetitions <= 1 ? new RegExp(`${re}$`, 's') : new GlobProgram(re.slice(1)) };
  } catch {
    throw new DockerignorePatternError(cleaned, 'syntax error in pattern');
  }
}

// Go's filepath.Match reports ErrBadPattern for unterminated classes and trailing escapes;
// Docker refuses such patterns up front.
function checkGlobSyntax(p: string): void {
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\') {
      if (i + 1 >= p.length) throw new DockerignorePatternError(p, 'trailing backslash');
      i++;
    } else if (ch === '[' && !inClass) {
      inClass = true;
      if (p[i + 1] === '^') i++;
      if (p[i + 1] === ']') throw new DockerignorePatternError(p, 'empty character class');
    } else if (ch === ']' && inClass) inClass = false;
    else if (ch === '/' && inClass) throw new DockerignorePatternError(p, 'unterminated character class');
  }
  if (inClass) throw new DockerignorePatternError(p, 'unterminated character class');
}

function matchPattern(p: CompiledPattern, path: string): boolean {
  switch (p.matchType) {
    case 'exact':
      return path === p.cleaned;
    case 'prefix':
      return path.startsWith(p.cleaned.slice(0, -2));
    case 'suffix': {
      let suffix = p.cleaned.slice(2);
      if (path.startsWith(suffix)) return true;
      suffix = suffix.slice(1);
      return path.endsWith(suffix);
    }
    case 'regexp':
      return p.regexp!.test(path);
  }
}

// Matches one path component against one pattern component (for directory pruning).
function componentMayMatch(patternDir: string, name: string): boolean {
  if (patternDir.includes('**')) return true;
  const { matchType, regexp } = compilePattern(patternDir);
  if (matchType === 'regexp') return regexp!.test(name);
  return patternDir === name;
}

export interface DockerignoreMatcher {
  /** True when `path` (relative to the context, slash-separated) is excluded from the context. */
  excludes(path: string): boolean;
  /**
   * True when a `!` exception may re-include something below `dir` even though `dir` itself is
   * excluded — the walker must then descend instead of pruning.
   */
  mayMatchInside(dir: string): boolean;
  readonly patterns: readonly string[];
}

function normaliseTarget(path: string): string {
  let p = cleanPath(path.replace(/\\/g, '/'));
  while (p.startsWith('/')) p = p.slice(1);
  return p === '' ? '.' : p;
}

/** Compiles patterns (as returned by parseDockerignore) into a reusable matcher. */
export function compileDockerignore(patterns: readonly string[]): DockerignoreMatcher {
  try {
    return compileChecked(patterns);
  } catch (err) {
    if (err instanceof DockerignorePatternError) throw new DockerignorePatternError(err.pattern, err.reason, patterns);
    throw err;
  }
}

function compileChecked(patterns: readonly string[]): DockerignoreMatcher {
  const compiled: CompiledPattern[] = [];
  for (const raw of patterns) {
    let p = raw.trim();
    if (p === '') continue;
    p = cleanPath(p);
    let exclusion = false;
    if (p[0] === '!') {
      if (p.length === 1) throw new DockerignorePatternError(raw, 'illegal exclusion pattern "!"');
      exclusion = true;
      p = p.slice(1);
    }
    checkGlobSyntax(p);
    compiled.push({ cleaned: p, exclusion, dirs: p.split('/'), ...compilePattern(p) });
  }
  const hasExclusions = compiled.some((c) => c.exclusion);

  // MatchesOrParentMatches from moby/patternmatcher.
  const excludes = (path: string): boolean => {
    if (compiled.length === 0) return false; // no .dockerignore: nothing to clean or split per path
    const file = normaliseTarget(path);
    const slash = file.lastIndexOf('/');
    const parentPath = slash < 0 ? '.' : file.slice(0, slash);
    const parentDirs = parentPath.split('/');
    let matched = false;
    for (const pattern of compiled) {
      if (pattern.exclusion !== matched) continue;
      let match = matchPattern(pattern, file);
      if (!match && parentPath !== '.') {
        for (let i = 0; i < parentDirs.length; i++) {
          if (matchPattern(pattern, parentDirs.slice(0, i + 1).join('/'))) {
            match = true;
            break;
          }
        }
      }
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  };

  const mayMatchInside = (dir: string): boolean => {
    if (!hasExclusions) return false;
    const d = normaliseTarget(dir);
    const parts = d === '.' ? [] : d.split('/');
    for (const pattern of compiled) {
      if (!pattern.exclusion) continue;
      let possible = true;
      for (let i = 0; i < parts.length; i++) {
        const pd = pattern.dirs[i];
        if (pd === undefined) {
          possible = false;
          break;
        }
        if (pd.includes('**')) break;
        if (!componentMayMatch(pd, parts[i])) {
          possible = false;
          break;
        }
      }
      if (possible) return true;
    }
    return false;
  };

  return { excludes, mayMatchInside, patterns: compiled.map((c) => (c.exclusion ? '!' : '') + c.cleaned) };
}

const matcherCache = new Map<string, DockerignoreMatcher>();

/**
 * True when `path` is excluded by `patterns` (Docker's MatchesOrParentMatches). Compiled
 * matchers are memoised per pattern list, so calling this per file in a walk is cheap.
 */
export function dockerignoreExcludes(patterns: readonly string[], path: string): boolean {
  const key = patterns.join('\n');
  let m = matcherCache.get(key);
  if (!m) {
    m = compileDockerignore(patterns);
    if (matcherCache.size > 64) matcherCache.clear();
    matcherCache.set(key, m);
  }
  return m.excludes(path);
}
