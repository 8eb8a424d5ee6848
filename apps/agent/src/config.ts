import { ConfigError, envBoolean, envPort, logLevel, parseEnv, SECRET_PREFIX, secretSetting } from "@modelgate/core";
import { parseGrpcUrl, plaintextRefusal } from "@modelgate/protocol";
import { z } from "zod";
import { DEFAULT_RECONNECT, type ReconnectSettings } from "./reconnect.js";
import type { RuntimeCredential } from "./runtime-client.js";
import { DEFAULT_RESOLVE_INTERVAL_MS, type GatewayTarget } from "./tunnel-set.js";

const environment = z.object({
  MODELGATE_GATEWAY_URLS: z.string({
    error: "is required (e.g. grpcs://gateway.example:8443, or dns:///gateway-tunnel.modelgate.svc:8443)",
  }),
  // How often dns:/// names are looked up again: new replicas get a tunnel within this.
  MODELGATE_GATEWAY_RESOLVE_INTERVAL_MS: z.coerce
    .number()
    .int()
    .min(500)
    .max(3_600_000)
    .default(DEFAULT_RESOLVE_INTERVAL_MS),
  // The longest wait between reconnect attempts to a gateway that answered
  // but failed the registration (one that is away is tried every second).
  MODELGATE_RECONNECT_MAX_MS: z.coerce.number().int().min(200).max(600_000).default(DEFAULT_RECONNECT.maxMs),
  // The longest wait between attempts while a gateway refuses the token.
  MODELGATE_RECONNECT_REFUSED_MAX_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(3_600_000)
    .default(DEFAULT_RECONNECT.refusedMaxMs),
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
  gateways: GatewayTarget[];
  resolveIntervalMs: number;
  reconnect: Pick<ReconnectSettings, "maxMs" | "refusedMaxMs">;
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

/**
 * `dns:///name:port` (gRPC's naming; TLS, like `grpcs://`), `dns+grpcs:///`
 * (the same, spelt out) or `dns+grpc:///` (plaintext, like `grpc://`): every
 * address the name resolves to is a gateway replica listening on `port`.
 * No authority (`dns://server/…`): the system resolver answers, as it does
 * for every other name the agent looks up.
 */
const DNS_URL = /^(dns|dns\+grpcs|dns\+grpc):\/\/\/(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

function parseGatewayUrl(url: string): { target: GatewayTarget; host: string } {
  if (/^dns(\+grpcs?)?:/.test(url)) {
    const match = DNS_URL.exec(url);
    const port = Number(match?.[4]);
    const host = match?.[2] ?? match?.[3];
    if (!match || !host || port < 1 || port > 65_535) {
      throw new Error(`"${url}" must be dns:///name:port (or dns+grpc:/// for plaintext), with no DNS server named`);
    }
    return { target: { kind: "dns", host, port, tls: match[1] !== "dns+grpc" }, host };
  }
  const target = parseGrpcUrl(url);
  return { target: { address: target.address, tls: target.tls }, host: target.host };
}

/** How a target appears in logs. */
export function gatewayLabel(target: GatewayTarget): string {
  if (target.kind !== "dns") return target.address;
  return `${target.tls ? "dns" : "dns+grpc"}:///${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): AgentConfig {
  const parsed = parseEnv(environment, env);

  const gateways = parsed.MODELGATE_GATEWAY_URLS.split(",")
    .map((url) => url.trim())
    .filter(Boolean)
    .map((url) => {
      let parsedUrl: { target: GatewayTarget; host: string };
      try {
        parsedUrl = parseGatewayUrl(url);
      } catch (error) {
        throw new ConfigError(`MODELGATE_GATEWAY_URLS: ${(error as Error).message}`);
      }
      const { target, host } = parsedUrl;
      const refusal = target.tls ? undefined : plaintextRefusal(host, parsed.MODELGATE_TUNNEL_ALLOW_INSECURE);
      if (refusal) throw new ConfigError(`MODELGATE_GATEWAY_URLS: ${refusal} (MODELGATE_TUNNEL_ALLOW_INSECURE=true)`);
      return target;
    });
  if (gateways.length === 0) throw new ConfigError("MODELGATE_GATEWAY_URLS: names no gateway");
  const labels = gateways.map((gateway) => gatewayLabel(gateway).replace(/^dns(\+grpcs?)?:/, "dns:"));
  if (new Set(labels).size !== gateways.length) {
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
    resolveIntervalMs: parsed.MODELGATE_GATEWAY_RESOLVE_INTERVAL_MS,
    reconnect: { maxMs: parsed.MODELGATE_RECONNECT_MAX_MS, refusedMaxMs: parsed.MODELGATE_RECONNECT_REFUSED_MAX_MS },
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
