// Public API of @buildyard/config: the one option table (options.ts: every key, its type,
// default, env variable and doc line) and loadConfig.ts, which turns the table plus a TOML file
// and BUILDYARD_* variables into a typed config and renders docs/configuration.md.
export { OPTIONS, type OptionSpec } from './options.js';
export { loadConfig, configReference, loadTokens, ConfigError, type BuildyardConfig } from './loadConfig.js';
