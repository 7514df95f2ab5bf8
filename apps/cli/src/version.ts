// One place for the client's version: the package's, read from src/ and from the bundle in dist/
// alike (both sit one level under apps/cli).
import { readFileSync } from 'node:fs';

export const CLIENT_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
