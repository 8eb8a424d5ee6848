import path from "node:path";
import { ConfigError, envBoolean, envPort, logLevel, parseEnv, secretSetting } from "@modelgate/core";
import { type OidcVerifierOptions, oidcOptionsFromEnv } from "@modelgate/identity";
import { type GrpcTarget, parseGrpcUrl, plaintextRefusal } from "@modelgate/protocol";
import { z } from "zod";
import { DEFAULT_QUOTA_OPTIONS, type QuotaReserveOptions } from "./quota.js";
import { DEFAULT_REFUSAL_BRAKE, type RefusalBrakeOptions } from "./refusal-brake.js";

const MIB = 1024 * 1024;

const environment = z.object({
  MODELGATE_GATEWAY_HOST: z.string().default("127.0.0.1"),
  MODELGATE_GATEWAY_PORT: envPort.default(8080),
  // /livez, /readyz and /metrics: on the operator's network only (docs/operations.md).
  MODELGATE_GATEWAY_OPS_HOST: z.string().default("127.0.0.1"),
  MODELGATE_GATEWAY_OPS_PORT: envPort.default(9080),
  MODELGATE_TUNNEL_HOST: z.string().default("127.0.0.1"),
  MODELGATE_TUNNEL_PORT: envPort.default(8443),
  MODELGATE_TUNNEL_TLS_CERT_FILE: z.string().optional(),
  MODELGATE_TUNNEL_TLS_KEY_FILE: z.string().optional(),
  MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE: z.string().optional(),
  MODELGATE_TUNNEL_ALLOW_INSECURE: envBoolean.default(false),
  MODELGATE_CONTROL_PLANE_GRPC_URL: z.string().default("grpc://127.0.0.1:8082"),
  MODELGATE_CONTROL_PLANE_CA_FILE: z.string().optional(),
  MODELGATE_GATEWAY_TOKEN: z.string().optional(),
  MODELGATE_GATEWAY_TOKEN_FILE: z.string().optional(),
  MODELGATE_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(512 * MIB)
    .default(10 * MIB),
  // A body that stalls this long is refused (408); also the grace before the minimum rate applies.
  MODELGATE_BODY_IDLE_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(15_000),
  // After the grace, bodies must arrive at least this fast on average (408 otherwise).
  MODELGATE_BODY_MIN_BYTES_PER_SECOND: z.coerce
    .number()
    .int()
    .min(1)
    .max(1024 * MIB)
    .default(64 * 1024),
  MODELGATE_MAX_JSON_DEPTH: z.coerce.number().int().min(8).max(1_000).default(64),
  MODELGATE_MAX_IN_FLIGHT_PER_SUBJECT: z.coerce.number().int().min(1).max(1_000_000).default(64),
  // Requests held open with `Prefer: wait` until their approval is decided (docs/approvals.md).
  MODELGATE_APPROVAL_MAX_WAIT_SECONDS: z.coerce.number().int().min(0).max(300).default(300),
  MODELGATE_APPROVAL_MAX_WAITING_PER_SUBJECT: z.coerce.number().int().min(0).max(10_000).default(8),
  MODELGATE_APPROVAL_MAX_WAITING: z.coerce.number().int().min(0).max(1_000_000).default(1_000),
  // The refusal brake (docs/security.md): a caller refused more than BURST
  // times, then more than PER_SECOND a second, waits up to MAX_DELAY_MS
  // for each further refusal; 0 turns it off.
  MODELGATE_REFUSAL_BURST: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_REFUSAL_BRAKE.burst),
  MODELGATE_REFUSAL_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_REFUSAL_BRAKE.perSecond),
  MODELGATE_REFUSAL_MAX_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(DEFAULT_REFUSAL_BRAKE.maxDelayMs),
  MODELGATE_REFUSAL_MAX_DELAYED: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(DEFAULT_REFUSAL_BRAKE.maxDelayed),
  // Request line and headers; a credential up to 16 KiB must fit with room to spare.
  MODELGATE_MAX_HEADER_BYTES: z.coerce
    .number()
    .int()
    .min(32 * 1024)
    .max(MIB)
    .default(64 * 1024),
  MODELGATE_UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(86_400_000).default(600_000),
  MODELGATE_QUEUE_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  MODELGATE_AGENT_WAIT_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  // On SIGTERM, how long the gateway keeps serving while unready, so load
  // balancers notice before its listener closes (docs/operations.md).
  MODELGATE_SHUTDOWN_DELAY_MS: z.coerce.number().int().min(0).max(120_000).default(5_000),
  // The audit queue, and rate limits shared by all gateway replicas.
  MODELGATE_REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional(),
  MODELGATE_AUDIT_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '_', '.' or '-'")
    .default("bull"),
  MODELGATE_AUDIT_FAIL_OPEN: envBoolean.default(false),
  MODELGATE_AUDIT_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * MIB)
    .default(4 * MIB),
  MODELGATE_AUDIT_BUFFER_RECORDS: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  MODELGATE_AUDIT_BUFFER_BYTES: z.coerce
    .number()
    .int()
    .min(MIB)
    .max(16 * 1024 * MIB)
    .default(256 * MIB),
  // Records wait here while Redis is away (docs/audit.md). Relative to the
  // working directory; the container image sets an absolute path.
  MODELGATE_AUDIT_SPOOL_DIR: z.string().default(".data/audit-spool"),
  MODELGATE_AUDIT_SPOOL_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .max(1024 * 1024 * MIB)
    .default(1024 * MIB),
  MODELGATE_DECISION_LOG_PROMPTS: envBoolean.default(false),
  // The local reserve of quotas (docs/policies.md#quotas): each gateway
  // leases this share of what is left of a budget, at most _MAX tokens or
  // requests, and serves from it without a round trip; 0 asks Redis every time.
  MODELGATE_QUOTA_RESERVE_FRACTION: z.coerce.number().min(0).max(0.5).default(DEFAULT_QUOTA_OPTIONS.reserveFraction),
  MODELGATE_QUOTA_RESERVE_MAX: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000_000)
    .default(DEFAULT_QUOTA_OPTIONS.reserveMax),
  MODELGATE_QUOTA_SYNC_MS: z.coerce.number().int().min(100).max(60_000).default(DEFAULT_QUOTA_OPTIONS.syncIntervalMs),
  LOG_LEVEL: logLevel.default("info"),
});

export interface GatewayConfig {
  host: string;
  port: number;
  /** The ops listener (/livez, /readyz, /metrics). */
  ops: { host: string; port: number };
  tunnelHost: string;
  tunnelPort: number;
  tunnelTls: { certFile: string; keyFile: string; clientCaFile?: string | undefined } | undefined;
  controlPlane: { target: GrpcTarget; caFile: string | undefined; token: string };
  maxBodyBytes: number;
  bodyIdleTimeoutMs: number;
  bodyMinBytesPerSecond: number;
  maxJsonDepth: number;
  maxInFlightPerSubject: number;
  approvals: { maxWaitSeconds: number; maxWaitingPerSubject: number; maxWaiting: number };
  refusalBrake: RefusalBrakeOptions;
  maxHeaderBytes: number;
  upstreamTimeoutMs: number;
  queueWaitMs: number;
  agentWaitMs: number;
  /** SIGTERM: serve this long while unready before closing the listener. */
  shutdownDelayMs: number;
  /** Required: the audit queue lives there. */
  redisUrl: string;
  audit: {
    queuePrefix: string;
    failOpen: boolean;
    maxBodyBytes: number;
    bufferRecords: number;
    bufferBytes: number;
    logPrompts: boolean;
    /** Where records wait on disk while the queue is unreachable (absolute). */
    spool: { dir: string; maxBytes: number };
  };
  oidc: OidcVerifierOptions | undefined;
  quota: QuotaReserveOptions;
  logLevel: z.output<typeof logLevel>;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): GatewayConfig {
  const parsed = parseEnv(environment, env);

  const certFile = parsed.MODELGATE_TUNNEL_TLS_CERT_FILE;
  const keyFile = parsed.MODELGATE_TUNNEL_TLS_KEY_FILE;
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new ConfigError("MODELGATE_TUNNEL_TLS_CERT_FILE and MODELGATE_TUNNEL_TLS_KEY_FILE go together");
  }
  if (parsed.MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE && !certFile) {
    throw new ConfigError("MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE needs MODELGATE_TUNNEL_TLS_CERT_FILE and _KEY_FILE");
  }
  const tunnelTls =
    certFile && keyFile ? { certFile, keyFile, clientCaFile: parsed.MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE } : undefined;
  if (!tunnelTls) {
    const refusal = plaintextRefusal(parsed.MODELGATE_TUNNEL_HOST, parsed.MODELGATE_TUNNEL_ALLOW_INSECURE);
    if (refusal) {
      throw new ConfigError(
        `MODELGATE_TUNNEL_HOST: ${refusal} (MODELGATE_TUNNEL_TLS_CERT_FILE/_KEY_FILE, or MODELGATE_TUNNEL_ALLOW_INSECURE=true)`,
      );
    }
  }

  if (parsed.MODELGATE_GATEWAY_OPS_PORT !== 0 && parsed.MODELGATE_GATEWAY_OPS_PORT === parsed.MODELGATE_GATEWAY_PORT) {
    throw new ConfigError(
      "MODELGATE_GATEWAY_OPS_PORT: must differ from MODELGATE_GATEWAY_PORT (ops stay off the public port)",
    );
  }

  let target: GrpcTarget;
  try {
    target = parseGrpcUrl(parsed.MODELGATE_CONTROL_PLANE_GRPC_URL);
  } catch (error) {
    throw new ConfigError(`MODELGATE_CONTROL_PLANE_GRPC_URL: ${(error as Error).message}`);
  }
  const cpRefusal = target.tls ? undefined : plaintextRefusal(target.host, parsed.MODELGATE_TUNNEL_ALLOW_INSECURE);
  if (cpRefusal) throw new ConfigError(`MODELGATE_CONTROL_PLANE_GRPC_URL: ${cpRefusal}`);

  const token = secretSetting(
    "MODELGATE_GATEWAY_TOKEN",
    parsed.MODELGATE_GATEWAY_TOKEN,
    parsed.MODELGATE_GATEWAY_TOKEN_FILE,
  );
  if (!token)
    throw new ConfigError("MODELGATE_GATEWAY_TOKEN (or _FILE) is required: the control plane's gateway token");

  // No record, no request: a gateway with nowhere to send audit records
  // would have to refuse every request, so it refuses to start instead.
  if (!parsed.MODELGATE_REDIS_URL) {
    throw new ConfigError(
      "MODELGATE_REDIS_URL is required: every request's audit record goes to the queue there (docs/audit.md)",
    );
  }

  return {
    host: parsed.MODELGATE_GATEWAY_HOST,
    port: parsed.MODELGATE_GATEWAY_PORT,
    ops: { host: parsed.MODELGATE_GATEWAY_OPS_HOST, port: parsed.MODELGATE_GATEWAY_OPS_PORT },
    tunnelHost: parsed.MODELGATE_TUNNEL_HOST,
    tunnelPort: parsed.MODELGATE_TUNNEL_PORT,
    tunnelTls,
    controlPlane: { target, caFile: parsed.MODELGATE_CONTROL_PLANE_CA_FILE, token },
    maxBodyBytes: parsed.MODELGATE_MAX_BODY_BYTES,
    bodyIdleTimeoutMs: parsed.MODELGATE_BODY_IDLE_TIMEOUT_MS,
    bodyMinBytesPerSecond: parsed.MODELGATE_BODY_MIN_BYTES_PER_SECOND,
    maxJsonDepth: parsed.MODELGATE_MAX_JSON_DEPTH,
    maxInFlightPerSubject: parsed.MODELGATE_MAX_IN_FLIGHT_PER_SUBJECT,
    approvals: {
      maxWaitSeconds: parsed.MODELGATE_APPROVAL_MAX_WAIT_SECONDS,
      maxWaitingPerSubject: parsed.MODELGATE_APPROVAL_MAX_WAITING_PER_SUBJECT,
      maxWaiting: parsed.MODELGATE_APPROVAL_MAX_WAITING,
    },
    refusalBrake: {
      burst: parsed.MODELGATE_REFUSAL_BURST,
      perSecond: parsed.MODELGATE_REFUSAL_PER_SECOND,
      maxDelayMs: parsed.MODELGATE_REFUSAL_MAX_DELAY_MS,
      maxDelayed: parsed.MODELGATE_REFUSAL_MAX_DELAYED,
    },
    maxHeaderBytes: parsed.MODELGATE_MAX_HEADER_BYTES,
    upstreamTimeoutMs: parsed.MODELGATE_UPSTREAM_TIMEOUT_MS,
    queueWaitMs: parsed.MODELGATE_QUEUE_TIMEOUT_MS,
    agentWaitMs: parsed.MODELGATE_AGENT_WAIT_MS,
    shutdownDelayMs: parsed.MODELGATE_SHUTDOWN_DELAY_MS,
    redisUrl: parsed.MODELGATE_REDIS_URL,
    audit: {
      queuePrefix: parsed.MODELGATE_AUDIT_QUEUE_PREFIX,
      failOpen: parsed.MODELGATE_AUDIT_FAIL_OPEN,
      maxBodyBytes: parsed.MODELGATE_AUDIT_MAX_BODY_BYTES,
      bufferRecords: parsed.MODELGATE_AUDIT_BUFFER_RECORDS,
      bufferBytes: parsed.MODELGATE_AUDIT_BUFFER_BYTES,
      logPrompts: parsed.MODELGATE_DECISION_LOG_PROMPTS,
      spool: { dir: path.resolve(parsed.MODELGATE_AUDIT_SPOOL_DIR), maxBytes: parsed.MODELGATE_AUDIT_SPOOL_MAX_BYTES },
    },
    oidc: oidcOptionsFromEnv(env),
    quota: {
      reserveFraction: parsed.MODELGATE_QUOTA_RESERVE_FRACTION,
      reserveMax: parsed.MODELGATE_QUOTA_RESERVE_MAX,
      syncIntervalMs: parsed.MODELGATE_QUOTA_SYNC_MS,
    },
    logLevel: parsed.LOG_LEVEL,
  };
}
