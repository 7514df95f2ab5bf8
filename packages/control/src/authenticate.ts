import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

export function serviceError(code: status, message: string): ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata() });
}

/** Maps the call's `authorization: Bearer <token>` to its tenant, or refuses with UNAUTHENTICATED. */
export function authenticate(metadata: Metadata, tokens: ReadonlyMap<string, string>): string {
  const header = metadata.get('authorization')[0];
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) {
    throw serviceError(status.UNAUTHENTICATED, 'missing bearer token: set BUILDYARD_TOKEN or create the builder with --token-file');
  }
  const tenant = tokens.get(header.slice('Bearer '.length).trim());
  if (!tenant) throw serviceError(status.UNAUTHENTICATED, 'invalid bearer token: check the token given to this builder');
  return tenant;
}
