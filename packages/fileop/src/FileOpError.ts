/** One-line, user-facing error from a file operation: what was wrong, where, what to do. */
export class FileOpError extends Error {
  readonly code: FileOpErrorCode;
  /** ENOSOURCE: the source path or wildcard that matched nothing, as the instruction wrote it. */
  readonly missingSource?: string;
  constructor(code: FileOpErrorCode, message: string, options?: { cause?: unknown; missingSource?: string }) {
    super(message, options);
    this.name = 'FileOpError';
    this.code = code;
    if (options?.missingSource !== undefined) this.missingSource = options.missingSource;
  }
}

export type FileOpErrorCode =
  | 'ENOSOURCE' // a source path or wildcard matched nothing
  | 'EBADPATTERN' // malformed wildcard or exclude pattern
  | 'EBADCHMOD' // --chmod value not understood
  | 'ENOTDIR' // tried to copy a directory onto a non-directory
  | 'EISDIR' // tried to replace a directory with a non-directory
  | 'EUNSUPPORTED' // file type that cannot be copied (device, socket)
  | 'EESCAPE' // archive entry escaping its destination
  | 'ELOOP' // a destination path that never ends (a symlink loop)
  | 'ELIMIT' // archive extraction limit exceeded (tar bomb)
  | 'EARCHIVE' // corrupt / unreadable archive
  | 'ECHECKSUM' // ADD --checksum mismatch
  | 'EFETCH' // ADD <url> download failed
  | 'EREFUSED' // ADD <url> (or a redirect) names an address builds may not reach
  | 'EBADARG'; // invalid option from the caller
