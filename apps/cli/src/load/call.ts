// Loaded by `buildyard build --call/--check` only: the Dockerfile parser and the subrequest printers.
export { parseCall, runCall } from '@buildyard/client';
