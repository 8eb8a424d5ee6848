import { ConfigError, envBoolean, envPort, logLevel, parseEnv, SECRET_PREFIX, secretSetting } from "@modelgate/core";
import { type GrpcTarget, parseGrpcUrl, plaintextRefusal } from "@modelgate/protocol";
import { z } from "zod";
import type { RuntimeCredential } from "./runtime-client.js";

const environment = z.object({
  MODELGATE_GATEWAY_URLS: z.string({ error: "is required (e.g. grpcs://gateway.example:8443)" }),
  MODELGATE_AGENT_TOKEN: z.string().optional(),
  MODELGATE_AGENT_TOKEN_FILE: z.string().optional(),
  MODELGATE_RUNTIME_URL: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
  MODELGATE_RUNTIME_API_KEY: z.string().optional(),
  MODELGATE_RUNTIME_API_KEY_FILE: z.string().optional(),
  MODELGATE_RUNTIME_HEADER_NAME: z
    .string()
    .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name")
    .optional(),
  MODELGATE_RUNTIME_HEADER_VALUE: z.string().optional(),
  MODELGATE_RUNTIME_HEADER_VALUE_FILE: z.string().optional(),
  MODELGATE_RUNTIME_HEALTH_PATH: z.string().startsWith("/", "must start with /").default("/health"),
  MODELGATE_AGENT_CAPACITY: z.coerce.number().int().min(1).max(4096).default(32),
  MODELGATE_DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  MODELGATE_TUNNEL_CA_FILE: z.string().optional(),
  MODELGATE_TUNNEL_CLIENT_CERT_FILE: z.string().optional(),
  MODELGATE_TUNNEL_CLIENT_KEY_FILE: z.string().optional(),
  MODELGATE_TUNNEL_ALLOW_INSECURE: envBoolean.default(false),
  // /livez, /readyz and /metrics: the agent's only listener (docs/operations.md).
  MODELGATE_AGENT_OPS_HOST: z.string().default("127.0.0.1"),
  MODELGATE_AGENT_OPS_PORT: envPort.default(9082),
  LOG_LEVEL: logLevel.default("info"),
});

export interface AgentConfig {
  gateways: GrpcTarget[];
  token: string;
  runtimeUrl: string;
  runtimeCredential: RuntimeCredential | undefined;
  runtimeHealthPath: string;
  capacity: number;
  drainTimeoutMs: number;
  tunnelTls: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined };
  /** The ops listener (/livez, /readyz, /metrics). */
  ops: { host: string; port: number };
  logLevel: z.output<typeof logLevel>;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): AgentConfig {
  const parsed = parseEnv(environment, env);

  const gateways = parsed.MODELGATE_GATEWAY_URLS.split(",")
    .map((url) => url.trim())
    .filter(Boolean)
    .map((url) => {
      let target: GrpcTarget;
      try {
        target = parseGrpcUrl(url);
      } catch (error) {
        throw new ConfigError(`MODELGATE_GATEWAY_URLS: ${(error as Error).message}`);
      }
      const refusal = target.tls ? undefined : plaintextRefusal(target.host, parsed.MODELGATE_TUNNEL_ALLOW_INSECURE);
      if (refusal) throw new ConfigError(`MODELGATE_GATEWAY_URLS: ${refusal} (MODELGATE_TUNNEL_ALLOW_INSECURE=true)`);
      return target;
    });
  if (gateways.length === 0) throw new ConfigError("MODELGATE_GATEWAY_URLS: names no gateway");
  if (new Set(gateways.map((gateway) => gateway.address)).size !== gateways.length) {
    throw new ConfigError("MODELGATE_GATEWAY_URLS: names a gateway twice");
  }

  const token = secretSetting("MODELGATE_AGENT_TOKEN", parsed.MODELGATE_AGENT_TOKEN, parsed.MODELGATE_AGENT_TOKEN_FILE);
  if (!token) throw new ConfigError("MODELGATE_AGENT_TOKEN (or MODELGATE_AGENT_TOKEN_FILE) is required");
  if (!token.startsWith(SECRET_PREFIX.agentToken)) {
    throw new ConfigError(`MODELGATE_AGENT_TOKEN: is not an agent token (they start with ${SECRET_PREFIX.agentToken})`);
  }

  const apiKey = secretSetting(
    "MODELGATE_RUNTIME_API_KEY",
    parsed.MODELGATE_RUNTIME_API_KEY,
    parsed.MODELGATE_RUNTIME_API_KEY_FILE,
  );
  const headerValue = secretSetting(
    "MODELGATE_RUNTIME_HEADER_VALUE",
    parsed.MODELGATE_RUNTIME_HEADER_VALUE,
    parsed.MODELGATE_RUNTIME_HEADER_VALUE_FILE,
  );
  let runtimeCredential: RuntimeCredential | undefined;
  if (apiKey !== undefined && parsed.MODELGATE_RUNTIME_HEADER_NAME !== undefined) {
    throw new ConfigError("set MODELGATE_RUNTIME_API_KEY or MODELGATE_RUNTIME_HEADER_NAME, not both");
  }
  if (apiKey !== undefined) runtimeCredential = { kind: "bearer", token: apiKey };
  if (parsed.MODELGATE_RUNTIME_HEADER_NAME !== undefined) {
    if (headerValue === undefined) throw new ConfigError("MODELGATE_RUNTIME_HEADER_VALUE is required with its name");
    runtimeCredential = { kind: "header", name: parsed.MODELGATE_RUNTIME_HEADER_NAME, value: headerValue };
  } else if (headerValue !== undefined) {
    throw new ConfigError("MODELGATE_RUNTIME_HEADER_NAME is required with its value");
  }

  if (Boolean(parsed.MODELGATE_TUNNEL_CLIENT_CERT_FILE) !== Boolean(parsed.MODELGATE_TUNNEL_CLIENT_KEY_FILE)) {
    throw new ConfigError("MODELGATE_TUNNEL_CLIENT_CERT_FILE and MODELGATE_TUNNEL_CLIENT_KEY_FILE go together");
  }

  return {
    gateways,
    token,
    runtimeUrl: parsed.MODELGATE_RUNTIME_URL,
    runtimeCredential,
    runtimeHealthPath: parsed.MODELGATE_RUNTIME_HEALTH_PATH,
    capacity: parsed.MODELGATE_AGENT_CAPACITY,
    drainTimeoutMs: parsed.MODELGATE_DRAIN_TIMEOUT_MS,
    tunnelTls: {
      caFile: parsed.MODELGATE_TUNNEL_CA_FILE,
      certFile: parsed.MODELGATE_TUNNEL_CLIENT_CERT_FILE,
      keyFile: parsed.MODELGATE_TUNNEL_CLIENT_KEY_FILE,
    },
    ops: { host: parsed.MODELGATE_AGENT_OPS_HOST, port: parsed.MODELGATE_AGENT_OPS_PORT },
    logLevel: parsed.LOG_LEVEL,
  };
}
