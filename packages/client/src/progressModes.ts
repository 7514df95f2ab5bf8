// The --progress modes, in a module of their own: the CLI's option table needs them as it starts,
// and importing them must not load the flag parser's dependencies (registry references, SSH).
export type ProgressMode = 'auto' | 'tty' | 'plain' | 'rawjson' | 'quiet';
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'tty', 'plain', 'rawjson', 'quiet'];
