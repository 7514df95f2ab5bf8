// Public API of @buildyard/control: the frontend's logic — authentication, the Control and
// ContextSync services, planning a build and coordinating it on the fleet, exporters
// (exporters/) and cache transfer. What it shares with workers is in @buildyard/contracts.
export { Frontend, type FrontendOptions, type StartedBuild } from './Frontend.js';
export { authenticate, serviceError } from './authenticate.js';
export { boundedShutdown, stopAccepting, stoppingError } from './serverShutdown.js';
// Build records, sealed secrets and stage payloads live in @buildyard/contracts; re-exported for callers.
export { BuildRecords, BuildSecrets, type BuildRecord, type BuildRecordStatus, type BuildSecretsPayload, type StagePayload } from '@buildyard/contracts';
export { BuildRunner, clientExportSource } from './BuildRunner.js';
export { isBaseImageVertex } from './baseImageVertices.js';
export { forwardSshAgents, type SshAgentSource } from './sshForwarding.js';
export { parseOutputs, pushImage, exporterFor, exportScratchDir, runExport, type ParsedOutput, type OutputType, type Exporter, type ExportFile, type ExportSource, type ExportStep } from './exporters/index.js';
export { parseAttests, attestSpec, type AttestationOptions, type BuildAttestations } from './exporters/index.js';
export { RemoteContexts, RemoteContextError, filterEntries, keepGitDirArg, type AddressPolicy, type SourceProgress } from './remoteContexts.js';
