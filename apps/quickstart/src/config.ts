// Configuration of the zero-config launcher. Everything has a default, so
// `npm start` needs no environment at all; what can be set is checked here
// once, before anything starts.
import path from "node:path";
import { ConfigError, envPort, logLevel, parseEnv } from "@modelgate/core";
import { z } from "zod";

const RUNTIME_PROTOCOLS = ["openai", "ollama", "tgi", "http"] as const;
export type RuntimeProtocol = (typeof RUNTIME_PROTOCOLS)[number];

/** Ollama's well-known port: a runtime URL on it is taken for Ollama unless told otherwise. */
const OLLAMA_PORT = "11434";

/** `<repo>/.data`, ignored by Git; the same from `src/` (tests) and `dist/` (built). */
const DEFAULT_DATA_DIR = path.resolve(import.meta.dirname, "../../..", ".data");

const environment = z
  .object({
    MODELGATE_HOST: z.string().default("127.0.0.1"),
    MODELGATE_GATEWAY_PORT: envPort.default(8080),
    MODELGATE_CONTROL_PLANE_PORT: envPort.default(8081),
    MODELGATE_CONTROL_PLANE_GRPC_PORT: envPort.default(8082),
    MODELGATE_TUNNEL_PORT: envPort.default(8443),
    // The ops listeners (/livez, /readyz, /metrics) always stay on loopback.
    MODELGATE_GATEWAY_OPS_PORT: envPort.default(9080),
    MODELGATE_CONTROL_PLANE_OPS_PORT: envPort.default(9081),
    MODELGATE_AGENT_OPS_PORT: envPort.default(9082),
    MODELGATE_DATA_DIR: z.string().optional(),
    // Postgres cannot listen on "any free port" and report it back, so 0 is refused.
    MODELGATE_EMBEDDED_POSTGRES_PORT: envPort.min(1, "must be a port from 1 to 65535").default(54329),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgresql:// URL" }).optional(),
    MODELGATE_RUNTIME_URL: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    MODELGATE_RUNTIME_PROTOCOL: z.enum(RUNTIME_PROTOCOLS).optional(),
    MODELGATE_RUNTIME_MODELS: z.string().optional(),
    MODELGATE_RUNTIME_API_KEY: z.string().optional(),
    MODELGATE_RUNTIME_HEALTH_PATH: z.string().startsWith("/", "must start with /").optional(),
    // The console is for the banner; logs appear only when something is wrong.
    LOG_LEVEL: logLevel.default("warn"),
  })
  .superRefine((env, ctx) => {
    // These describe the runtime at MODELGATE_RUNTIME_URL; without it they
    // would be silently ignored in favour of the demo runtime.
    if (env.MODELGATE_RUNTIME_URL) return;
    for (const name of [
      "MODELGATE_RUNTIME_PROTOCOL",
      "MODELGATE_RUNTIME_MODELS",
      "MODELGATE_RUNTIME_API_KEY",
      "MODELGATE_RUNTIME_HEALTH_PATH",
    ] as const) {
      if (env[name] !== undefined) {
        ctx.addIssue({ code: "custom", path: [name], message: "only applies with MODELGATE_RUNTIME_URL" });
      }
    }
  });

/** The stand-in runtime started in this process when no runtime URL is given. */
interface DemoRuntimeConfig {
  kind: "demo";
}

/** A real runtime (Ollama, vLLM, ...) the user points at. */
export interface ExternalRuntimeConfig {
  kind: "external";
  url: string;
  protocol: RuntimeProtocol;
  /** Undefined: ask the runtime which models it serves. */
  models: string[] | undefined;
  /** Sent by the agent to the runtime only; callers never see it. */
  apiKey: string | undefined;
  healthPath: string;
}

export interface QuickstartConfig {
  /** Interface of the gateway and control-plane HTTP listeners. */
  host: string;
  ports: {
    gateway: number;
    controlPlane: number;
    controlPlaneGrpc: number;
    tunnel: number;
    /** Ops listeners, on loopback whatever `host` says. */
    gatewayOps: number;
    controlPlaneOps: number;
    agentOps: number;
  };
  dataDir: string;
  database: { kind: "embedded"; port: number } | { kind: "external"; url: string };
  runtime: DemoRuntimeConfig | ExternalRuntimeConfig;
  logLevel: z.output<typeof logLevel>;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): QuickstartConfig {
  const parsed = parseEnv(environment, env);
  return {
    host: parsed.MODELGATE_HOST,
    ports: {
      gateway: parsed.MODELGATE_GATEWAY_PORT,
      controlPlane: parsed.MODELGATE_CONTROL_PLANE_PORT,
      controlPlaneGrpc: parsed.MODELGATE_CONTROL_PLANE_GRPC_PORT,
      tunnel: parsed.MODELGATE_TUNNEL_PORT,
      gatewayOps: parsed.MODELGATE_GATEWAY_OPS_PORT,
      controlPlaneOps: parsed.MODELGATE_CONTROL_PLANE_OPS_PORT,
      agentOps: parsed.MODELGATE_AGENT_OPS_PORT,
    },
    dataDir: path.resolve(parsed.MODELGATE_DATA_DIR ?? DEFAULT_DATA_DIR),
    database: parsed.DATABASE_URL
      ? { kind: "external", url: parsed.DATABASE_URL }
      : { kind: "embedded", port: parsed.MODELGATE_EMBEDDED_POSTGRES_PORT },
    runtime: parsed.MODELGATE_RUNTIME_URL ? externalRuntime(parsed.MODELGATE_RUNTIME_URL, parsed) : { kind: "demo" },
    logLevel: parsed.LOG_LEVEL,
  };
}

function externalRuntime(
  url: string,
  parsed: {
    MODELGATE_RUNTIME_PROTOCOL?: RuntimeProtocol | undefined;
    MODELGATE_RUNTIME_MODELS?: string | undefined;
    MODELGATE_RUNTIME_API_KEY?: string | undefined;
    MODELGATE_RUNTIME_HEALTH_PATH?: string | undefined;
  },
): ExternalRuntimeConfig {
  // The agent appends the caller's path (`/v1/chat/completions`) to this URL,
  // so the usual OpenAI base URL would become `/v1/v1/...`.
  if (/\/v1\/?$/.test(new URL(url).pathname)) {
    throw new ConfigError(
      "MODELGATE_RUNTIME_URL: give the runtime's address without /v1 (e.g. http://127.0.0.1:8000); callers' paths already start with /v1",
    );
  }
  const protocol = parsed.MODELGATE_RUNTIME_PROTOCOL ?? (new URL(url).port === OLLAMA_PORT ? "ollama" : "openai");
  let models: string[] | undefined;
  if (parsed.MODELGATE_RUNTIME_MODELS !== undefined) {
    models = [
      ...new Set(
        parsed.MODELGATE_RUNTIME_MODELS.split(",")
          .map((model) => model.trim())
          .filter(Boolean),
      ),
    ];
    if (models.length === 0) throw new ConfigError("MODELGATE_RUNTIME_MODELS: list at least one model name");
  }
  return {
    kind: "external",
    url,
    protocol,
    models,
    apiKey: parsed.MODELGATE_RUNTIME_API_KEY,
    // Ollama answers "Ollama is running" on `/` and has no /health.
    healthPath: parsed.MODELGATE_RUNTIME_HEALTH_PATH ?? (protocol === "ollama" ? "/" : "/health"),
  };
}

/** The configuration as it may be logged: no database password, no runtime key. */
export function redactConfig(config: QuickstartConfig): Record<string, unknown> {
  const database =
    config.database.kind === "external"
      ? { kind: "external", url: redactUrl(config.database.url) }
      : { ...config.database };
  const runtime =
    config.runtime.kind === "external"
      ? { ...config.runtime, apiKey: config.runtime.apiKey ? "[set]" : "[unset]" }
      : config.runtime;
  return { ...config, database, runtime };
}

function redactUrl(value: string): string {
  const url = new URL(value);
  if (url.password) url.password = "redacted";
  for (const parameter of ["password", "sslpassword"]) {
    if (url.searchParams.has(parameter)) url.searchParams.set(parameter, "redacted");
  }
  return url.toString();
}
