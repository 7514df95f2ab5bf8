export { OPTIONS, type OptionSpec } from './options.js';
export { loadConfig, configReference, loadTokens, ConfigError, type BuildyardConfig } from './loadConfig.js';
