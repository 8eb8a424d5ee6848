// What `npm start` prints once everything answers: where to send requests,
// with which key, and examples that work when pasted as they are.
import type { RunningQuickstart } from "./quickstart.js";

export type BannerInput = Omit<RunningQuickstart, "close">;

export function formatBanner(run: BannerInput): string {
  const v1 = `${run.gatewayUrl}/v1`;
  const model = exampleModel(run.models);
  const request = JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }] });
  const lines = [
    "",
    "modelgate is running.",
    "",
    `  Gateway URL       ${run.gatewayUrl}`,
    `  OpenAI base URL   ${v1}`,
    `  API key           ${run.apiKey}`,
    "                    (new at every start; the keys printed by earlier starts no longer work)",
    `  Models            ${run.models.join(", ")}`,
    `  Native API        ${run.gatewayUrl}/c/${run.runtime.connection}/...  (the runtime's own paths, same key)`,
    "",
    ...runtimeNotice(run),
    "Try it with curl:",
    "",
    `  curl ${v1}/chat/completions -H "Authorization: Bearer ${run.apiKey}" -H "content-type: application/json" -d '${request}'`,
    "",
    "With the OpenAI SDK for Python (pip install openai):",
    "",
    "  from openai import OpenAI",
    `  client = OpenAI(base_url="${v1}", api_key="${run.apiKey}")`,
    `  reply = client.chat.completions.create(model="${model}", messages=[{"role": "user", "content": "Hello"}])`,
    "  print(reply.choices[0].message.content)",
    "",
    "With the OpenAI SDK for JavaScript (npm install openai):",
    "",
    '  import OpenAI from "openai";',
    `  const client = new OpenAI({ baseURL: "${v1}", apiKey: "${run.apiKey}" });`,
    `  const reply = await client.chat.completions.create({ model: "${model}", messages: [{ role: "user", content: "Hello" }] });`,
    "  console.log(reply.choices[0].message.content);",
    "",
    "Control plane API (docs/control-plane-api.md):",
    "",
    `  URL               ${run.controlPlaneUrl}/api/v1`,
    `  Admin token       ${run.adminToken}  (this run only)`,
    `  curl ${run.controlPlaneUrl}/api/v1/connections -H "Authorization: Bearer ${run.adminToken}"`,
    "",
    "The web console (docs/console.md): sign in with the admin token above",
    "",
    `  ${run.controlPlaneUrl}/console/`,
    "",
    "The modelgate CLI (docs/cli.md), from the repository:",
    "",
    `  echo ${run.adminToken} | npx modelgate login --url ${run.controlPlaneUrl} --token-stdin`,
    "  npx modelgate status",
    "",
    "Health and metrics (/livez, /readyz, /metrics; loopback only):",
    "",
    `  Gateway           ${run.ops.gateway}`,
    `  Control plane     ${run.ops.controlPlane}`,
    `  Agent             ${run.ops.agent}`,
    "",
    `  Runtime           ${runtimeLine(run)}`,
    `  Database          ${databaseLine(run)}`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ];
  return lines.join("\n");
}

/** A chat model for the examples: embedding models cannot answer a chat request. */
function exampleModel(models: string[]): string {
  return models.find((model) => !/embed/i.test(model)) ?? models[0] ?? "<connection>/<model>";
}

function runtimeNotice(run: BannerInput): string[] {
  if (run.runtime.kind !== "demo") return [];
  return [
    "  THIS IS A DEMO: no model is running. The built-in demo runtime answers every",
    "  request with the same fixed text, so you can try keys, routing and streaming.",
    "  For real answers, start again with MODELGATE_RUNTIME_URL set to an Ollama",
    "  (http://127.0.0.1:11434) or vLLM (http://127.0.0.1:8000) server.",
    "",
  ];
}

function runtimeLine(run: BannerInput): string {
  const { kind, url, connection } = run.runtime;
  return kind === "demo"
    ? `demo runtime at ${url} (connection "${connection}")`
    : `${url} (connection "${connection}")`;
}

function databaseLine(run: BannerInput): string {
  if (run.database.kind === "external") return "DATABASE_URL";
  const { port, clusterDir, created } = run.database;
  return `embedded Postgres on 127.0.0.1:${port}, ${created ? "created in" : "data in"} ${clusterDir}`;
}
