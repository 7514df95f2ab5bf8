// Public API of @buildyard/bake: `buildyard bake` (buildx bake) over @buildyard/client's build path.
export { parseHcl, parseExpression } from './hcl/parse.js';
export { parseHclJson } from './hcl/json.js';
export { HclError } from './hcl/ast.js';
export { evaluateHcl } from './hclConfig.js';
export { parseCompose } from './compose.js';
export { DEFAULT_FILES, BakeError, readBakeFiles, parseFiles, resolveTargets, type BakeFile, type Resolved, type ResolveOptions } from './resolve.js';
export { printJson, targetJson, type Target, type Group, type Config } from './target.js';
export { runBake, type BakeFlags, type RunBakeOptions } from './runBake.js';
