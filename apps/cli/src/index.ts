// Public API of @buildyard/cli: the commander program, for embedding and tests.
export { createProgram, run } from './program.js';
