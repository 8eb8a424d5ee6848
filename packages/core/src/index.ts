export { ConfigError, envBoolean, envPort, logLevel, parseEnv } from "./env.js";
export { type CreateLoggerOptions, createLogger, type Logger, REDACTED_PATHS } from "./logger.js";
export {
  generateSecret,
  hashSecret,
  SECRET_PREFIX,
  secretDisplayPrefix,
  secretMatchesHash,
  secretsEqual,
} from "./secrets.js";
