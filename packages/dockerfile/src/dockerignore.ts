// .dockerignore parsing and matching live in @buildyard/fileop (one matcher for the context
// walk, COPY --exclude and cache keys); re-exported here where the frontend's users look.
export { compileDockerignore, dockerignoreExcludes, DockerignorePatternError, parseDockerignore, type DockerignoreMatcher } from '@buildyard/fileop';
