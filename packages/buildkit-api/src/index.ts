// Public API of @buildyard/buildkit-api: BuildKit's control API (buildctl, docker buildx
// --driver remote) in front of the fleet, with the client session (file sync) it needs.
export { BuildkitServer, type BuildkitServerOptions } from './BuildkitServer.js';
export { SessionManager, ClientSession } from './SessionManager.js';
export { receiveLocal, receiveLocalToStore, readLocalFiles, unixMode, LocalSyncError, type LocalOptions, type PreviousSync } from './fileSync.js';
export { StatusTranslator } from '@buildyard/progress';
export { dockerfileAttrs, checkSyntaxDirective, UnsupportedRequest } from './solveRequest.js';
