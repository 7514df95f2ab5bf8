export { Frontend, type FrontendOptions } from './Frontend.js';
export { authenticate, serviceError } from './authenticate.js';
export { BuildRecords, type BuildRecord, type BuildRecordStatus } from './BuildRecords.js';
export { BuildSecrets, type BuildSecretsPayload } from './BuildSecrets.js';
export { BuildRunner, type StagePayload } from './BuildRunner.js';
export { parseOutputs, pushImage, localOutputFiles, type ParsedOutput, type OutputType } from './exportImage.js';
