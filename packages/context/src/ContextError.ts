import { status } from '@grpc/grpc-js';

export type ContextErrorCode = 'invalid' | 'too-large' | 'internal' | 'idle';

/** A one-line, user-facing context problem; `grpcCode` is what the server answers with. */
export class ContextError extends Error {
  constructor(message: string, readonly code: ContextErrorCode = 'invalid') {
    super(message);
    this.name = 'ContextError';
  }

  get grpcCode(): status {
    if (this.code === 'too-large') return status.RESOURCE_EXHAUSTED;
    if (this.code === 'internal') return status.INTERNAL;
    if (this.code === 'idle') return status.DEADLINE_EXCEEDED;
    return status.INVALID_ARGUMENT;
  }
}
