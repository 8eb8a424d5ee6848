// docker-compose.yml's `provision` service: registers the demo through the
// control plane's admin API, as an operator would, once the control plane
// answers:
//   - the connection `demo` (the demo runtime's models, OpenAI protocol);
//   - an agent token for it, written to /var/lib/modelgate/agent-token,
//     which the `agent` service reads (MODELGATE_AGENT_TOKEN_FILE);
//   - an API key of group `compose-demo`, written to .../api-key and printed;
//   - the policy `compose-demo`: that group may run inference on `demo`.
// Each is kept while it is still valid, so `docker compose up` again leaves
// the running agent's token and your key alone; a revoked or lost one is
// replaced (and the earlier ones of that name revoked).
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const DIR = "/var/lib/modelgate";
const CONTROL_PLANE = process.env.CONTROL_PLANE_URL ?? "http://control-plane:8081";
const GATEWAY = process.env.GATEWAY_PUBLIC_URL ?? "http://127.0.0.1:8080";
const MODELS = (process.env.DEMO_MODELS ?? "demo-chat,demo-embed").split(",").map((model) => model.trim());
const NAME = "compose-demo";
const CONNECTION = "demo";
const STATE_FILE = path.join(DIR, "provisioned.json");

const adminToken = readFileSync(path.join(DIR, "admin-token"), "utf8").trim();

async function api(method, route, body) {
  const response = await fetch(`${CONTROL_PLANE}/api/v1${route}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

function expect(answer, status, what) {
  if (answer.status !== status) {
    throw new Error(`could not ${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

async function listAll(route) {
  const items = [];
  let cursor = null;
  do {
    const separator = route.includes("?") ? "&" : "?";
    const page = expect(
      await api("GET", `${route}${separator}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
      200,
      `list ${route}`,
    );
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

function readState() {
  try {
    return JSON.parse(readFileSync(STATE_FILE, "utf8"));
  } catch {
    return {};
  }
}

const secret = (file, value) => writeFileSync(path.join(DIR, file), `${value}\n`, { mode: 0o600 });

// depends_on waits for the control plane's health check; this covers engines that do not.
for (let attempt = 0; ; attempt++) {
  const healthy = await fetch(`${CONTROL_PLANE}/healthz`).then(
    (response) => response.ok,
    () => false,
  );
  if (healthy) break;
  if (attempt === 120) throw new Error(`the control plane at ${CONTROL_PLANE} did not answer within 2 minutes`);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}

const state = readState();

if ((await api("GET", `/connections/${CONNECTION}`)).status === 404) {
  expect(
    await api("POST", "/connections", {
      name: CONNECTION,
      protocol: "openai",
      models: MODELS,
      description: "the demo runtime (docker-compose.yml)",
    }),
    201,
    "create the connection",
  );
}

const agents = await listAll(`/agents?connection=${CONNECTION}`);
if (!agents.some((agent) => agent.id === state.agentId && agent.status === "active")) {
  for (const agent of agents.filter((agent) => agent.name === NAME && agent.status === "active")) {
    expect(await api("DELETE", `/agents/${agent.id}`), 204, "revoke an earlier agent");
  }
  const agent = expect(
    await api("POST", `/connections/${CONNECTION}/agents`, { name: NAME }),
    201,
    "issue an agent token",
  );
  secret("agent-token", agent.token);
  state.agentId = agent.id;
}

const keys = await listAll("/api-keys");
if (!keys.some((key) => key.id === state.apiKeyId && key.status === "active")) {
  for (const key of keys.filter((key) => key.name === NAME && key.status === "active")) {
    expect(await api("DELETE", `/api-keys/${key.id}`), 204, "revoke an earlier API key");
  }
  const key = expect(await api("POST", "/api-keys", { name: NAME, groups: [NAME] }), 201, "issue an API key");
  secret("api-key", key.key);
  state.apiKeyId = key.id;
}

const policies = await listAll("/policies");
if (!policies.some((policy) => policy.name === NAME)) {
  expect(
    await api("POST", "/policies", {
      name: NAME,
      description: "docker-compose.yml: the demo key may use the demo runtime",
      subjects: { groups: [NAME] },
      resources: [{ connection: CONNECTION, models: ["*"] }],
      operations: ["inference", "embeddings", "models.list"],
    }),
    201,
    "create the policy",
  );
}

writeFileSync(STATE_FILE, `${JSON.stringify(state)}\n`, { mode: 0o600 });

const apiKey = readFileSync(path.join(DIR, "api-key"), "utf8").trim();
process.stdout.write(
  [
    "",
    "modelgate is provisioned. Once the agent has connected (a second or two):",
    "",
    `  curl ${GATEWAY}/v1/chat/completions -H "Authorization: Bearer ${apiKey}" \\`,
    "    -H 'content-type: application/json' \\",
    `    -d '{"model":"${CONNECTION}/${MODELS[0]}","messages":[{"role":"user","content":"Hello"}]}'`,
    "",
    "  API key (group compose-demo): docker compose logs provision",
    "  admin token:                  docker compose exec control-plane cat /var/lib/modelgate/admin-token",
    "",
  ].join("\n"),
);
