// The model runtime behind this run's connection: the demo stand-in started
// in this process, or a real runtime whose models are listed by asking it.
import { startRuntimeFixture } from "@modelgate/runtime-fixture";
import type { ExternalRuntimeConfig, QuickstartConfig, RuntimeProtocol } from "./config.js";
import type { QuickstartConnection } from "./provision.js";

export interface ResolvedRuntime {
  kind: "demo" | "external";
  connection: QuickstartConnection;
  url: string;
  protocol: RuntimeProtocol;
  models: string[];
  credential: { kind: "bearer"; token: string } | undefined;
  healthPath: string;
  /** Stops the demo runtime; nothing for a real one. */
  close(): Promise<void>;
}

/** Models the demo runtime serves: one chat and one embedding model. */
const DEMO_MODELS = ["demo-chat", "demo-embed"];
/** Listing models is quick on every runtime; a slower answer means something is wrong. */
const DISCOVERY_TIMEOUT_MS = 10_000;

export async function resolveRuntime(config: QuickstartConfig["runtime"]): Promise<ResolvedRuntime> {
  if (config.kind === "external") return externalRuntime(config);
  // Speaks OpenAI, Ollama and TGI, so every example works; the label marks
  // each answer as the demo's, not a model's.
  const fixture = await startRuntimeFixture({ label: "demo runtime", models: DEMO_MODELS });
  return {
    kind: "demo",
    connection: "demo",
    url: fixture.url,
    protocol: "openai",
    models: DEMO_MODELS,
    credential: undefined,
    healthPath: "/health",
    close: () => fixture.close(),
  };
}

async function externalRuntime(config: ExternalRuntimeConfig): Promise<ResolvedRuntime> {
  const credential = config.apiKey ? { kind: "bearer" as const, token: config.apiKey } : undefined;
  const models = config.models ?? (await discoverModels(config));
  return {
    kind: "external",
    connection: "local",
    url: config.url,
    protocol: config.protocol,
    models,
    credential,
    healthPath: config.healthPath,
    close: () => Promise.resolve(),
  };
}

/**
 * Asks the runtime what it serves. A connection must list at least one model
 * (the control plane refuses an empty list), so a runtime that cannot be
 * asked means the user has to name the models.
 */
async function discoverModels(config: ExternalRuntimeConfig): Promise<string[]> {
  const listing = LISTINGS[config.protocol];
  const fix = "start the runtime first, or list its models in MODELGATE_RUNTIME_MODELS=name1,name2";
  if (!listing) {
    throw new Error(`a runtime with protocol ${config.protocol} cannot list its models: set MODELGATE_RUNTIME_MODELS`);
  }
  const url = runtimeEndpoint(config.url, listing.path);
  let body: unknown;
  try {
    const response = await fetch(url, {
      headers: config.apiKey ? { authorization: `Bearer ${config.apiKey}` } : {},
      signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`it answered ${response.status}`);
    body = await response.json();
  } catch (error) {
    throw new Error(`could not list the models of ${url} (${errorText(error)}): ${fix}`);
  }
  const models = [...new Set(listing.read(body))];
  if (models.length === 0) throw new Error(`${url} lists no models: ${fix}`);
  return models;
}

const LISTINGS: Partial<Record<RuntimeProtocol, { path: string; read: (body: unknown) => string[] }>> = {
  // vLLM, llama.cpp, LocalAI, ...: {"data": [{"id": "meta-llama/Llama-3.1-8B-Instruct"}]}
  openai: { path: "/v1/models", read: (body) => namesIn(body, "data", "id") },
  // {"models": [{"name": "llama3.1:8b"}]}
  ollama: { path: "/api/tags", read: (body) => namesIn(body, "models", "name") },
  // TGI serves one model: {"model_id": "..."}
  tgi: {
    path: "/info",
    read: (body) => {
      const id = (body as { model_id?: unknown } | null)?.model_id;
      return typeof id === "string" && id !== "" ? [id] : [];
    },
  },
};

function namesIn(body: unknown, listField: string, nameField: string): string[] {
  const list = (body as Record<string, unknown> | null)?.[listField];
  if (!Array.isArray(list)) return [];
  return list
    .map((entry) => (entry as Record<string, unknown> | null)?.[nameField])
    .filter((name): name is string => typeof name === "string" && name !== "");
}

/** `path` under the runtime's base URL, the way the agent joins request paths. */
function runtimeEndpoint(base: string, path: string): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${path}`;
  url.search = "";
  return url.toString();
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error.cause as { code?: string; message?: string } | undefined) ?? undefined;
    return cause?.code ?? cause?.message ?? error.message;
  }
  return String(error);
}
