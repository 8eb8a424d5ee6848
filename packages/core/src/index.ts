export { type Backoff, createBackoff } from "./backoff.js";
export { ConfigError, envBoolean, envPort, logLevel, parseEnv, secretSetting } from "./env.js";
export { bearerToken, type HeaderPair, headerRecord, headersForCaller, headersForRuntime } from "./http-headers.js";
export { resolveRuntimePath, UnsafePathError } from "./http-path.js";
export { uuidv7 } from "./ids.js";
export { type CreateLoggerOptions, createLogger, type Logger, REDACTED_PATHS, withoutRedaction } from "./logger.js";
export {
  type MetricsSource,
  type OpsServer,
  type OpsServerOptions,
  type Readiness,
  startOpsServer,
} from "./ops-server.js";
export {
  generateSecret,
  hashSecret,
  SECRET_PREFIX,
  secretDisplayPrefix,
  secretMatchesHash,
  secretsEqual,
} from "./secrets.js";
