import { Metadata, type ServiceError, type status } from '@grpc/grpc-js';
import { parse } from '@buildyard/dockerfile';
import { errdefs } from '@buildyard/proto';

/** Where in the Dockerfile a build failed: buildx prints these lines as the error's excerpt. */
export interface ErrorSource {
  filename: string;
  data: Buffer;
  /** 1-based, inclusive. */
  startLine: number;
  endLine: number;
}

/**
 * A Solve error carrying BuildKit's `errdefs.Source` detail in grpc-status-details-bin, so that
 * buildx and buildctl print the `Dockerfile:N` excerpt under the error as they do for buildkitd.
 * "errdefs.Source" is the type URL buildkitd sends (gogo's registered name), which both the old
 * gogo-based and the new protobuf-based clients resolve.
 */
export function sourceServiceError(code: status, message: string, source: ErrorSource): ServiceError {
  const detail = errdefs.Source.encode({
    info: { filename: source.filename, data: source.data },
    ranges: [{ start: { line: source.startLine, character: 0 }, end: { line: source.endLine, character: 0 } }],
  }).finish();
  const details = errdefs.StatusDetails.encode({ code, message, details: [{ typeUrl: 'errdefs.Source', value: Buffer.from(detail) }] }).finish();
  const metadata = new Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(details));
  return Object.assign(new Error(message), { code, details: message, metadata });
}

/**
 * The last line of the instruction starting at `line` (1-based), as the parser spans it: backslash
 * continuations and heredoc bodies up to their terminator (buildkitd marks the whole range).
 */
export function instructionEndLine(data: Buffer, line: number): number {
  try {
    const ins = parse(data.toString('utf8')).instructions.find((i) => i.startLine === line);
    if (ins) return ins.endLine;
  } catch { /* a Dockerfile that does not parse fails on one line: its error's own */ }
  return line;
}
