// Public API of @buildyard/progress: the build event model and its Redis stream.
export {
  toSolveEvent, fromSolveEvent, encodeEvent,
  type ProgressEvent, type ProgressEventType, type StreamedProgressEvent, type VertexRef, type ImageRef, type LogStream,
} from './ProgressEvent.js';
export { decodeEvent, storedProgressEventSchema } from './storedEvent.js';
export { ProgressWriter, TRUNCATION_MARKER, type ProgressWriterOptions } from './ProgressWriter.js';
export { readProgress, type ReadProgressOptions } from './readProgress.js';
export { progressStreamKey, EVENT_FIELD } from './progressStream.js';
export { utf8SafeCut, incompleteUtf8Tail } from './utf8.js';
export { StatusTranslator, internalDigest, vertexUpdate } from './statusTranslator.js';
export { stepVertexRef, stepVertexDigest } from './stepVertexRef.js';
export { solveStatusJson, warningUpdate, goTime, type SolveStatusUpdate, type SolveStatusWarning } from './solveStatusJson.js';
