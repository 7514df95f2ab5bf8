// COPY / ADD / WORKDIR / heredoc file operations over plain directories, with Docker/BuildKit
// semantics. The caller resolves Dockerfile words, WORKDIR and --chown before calling.
export { copy, type CopyOptions, type CopyResult } from './copy.js';
export { addUrl, urlFileName, downloadUrl, httpLimitsOf, type AddUrlOptions, type AddUrlResult, type FetchedUrl } from './addUrl.js';
export { revalidateUrl, DirUrlValidatorStore, type RevalidateOptions, type UrlRevision, type UrlValidator, type UrlValidatorStore } from './revalidateUrl.js';
export { mkdir, type MkdirOptions } from './mkdir.js';
export { mkfile, type MkfileOptions } from './mkfile.js';
export { contentDigestsFor, type ContentDigest, type ContentDigestOptions } from './contentDigestsFor.js';
export { planCopy, type CopyPlan, type MatchedSource, type PlannedEntry, type SourceSelection } from './planCopy.js';
export { extractArchive, sniffArchive, DEFAULT_EXTRACT_LIMITS, type Compression, type ExtractLimits, type ExtractOptions, type ExtractResult } from './extractArchive.js';
export { parseChmod, type ModeTransform } from './chmodSpec.js';
export { goMatch, hasWildcard } from './goMatch.js';
export { compileDockerignore, dockerignoreExcludes, DockerignorePatternError, parseDockerignore, cleanPath, type DockerignoreMatcher } from './patternmatcher.js';
export { resolveChown, resolveChownOnScratch } from './resolveChown.js';
export { resolveScoped } from './resolveScoped.js';
export { pathInRoot, pinPathInRoot, type PathInRoot, type PinnedPath } from './pathInRoot.js';
export { fsTree, entriesTree, type SourceTree, type TreeEntry, type TreeStat, type EntryType } from './SourceTree.js';
export type { Owner } from './destFs.js';
export { FileOpError, type FileOpErrorCode } from './FileOpError.js';
export { parseGitRef, isGitTransport, GitRefError, type GitRef, type GitScheme } from './gitRef.js';
export { fetchGit, resolveGitCommit, GitFetchError, type GitFetchOptions, type FetchedGit } from './fetchGit.js';
