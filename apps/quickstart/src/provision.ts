// Sets up what one run needs through the control plane's admin API, exactly
// as an operator would: the connection, a fresh agent token and a fresh API
// key. Earlier runs' agents and keys are revoked so their printed secrets
// stop working, and a connection left from the other kind of runtime goes.
import type { RuntimeProtocol } from "./config.js";

/** Agents and API keys this launcher creates carry this name. */
const QUICKSTART_NAME = "quickstart";

/** The connections this launcher creates: `demo` for the stand-in runtime, `local` for a real one. */
const QUICKSTART_CONNECTIONS = ["demo", "local"] as const;
export type QuickstartConnection = (typeof QUICKSTART_CONNECTIONS)[number];

/** Marks the connections this launcher created, and so may remove again. */
const CREATED_BY = "created by npm start (apps/quickstart)";

export interface AdminClient {
  // biome-ignore lint/suspicious/noExplicitAny: answers are JSON of many shapes, read field by field below
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

export interface ProvisionRequest {
  connection: QuickstartConnection;
  protocol: RuntimeProtocol;
  models: string[];
}

export interface Provisioned {
  agent: { id: string; token: string };
  apiKey: { id: string; key: string };
  /** How many agents and keys of earlier runs were revoked. */
  revoked: { agents: number; apiKeys: number };
}

export function createAdminClient(controlPlaneUrl: string, adminToken: string): AdminClient {
  return {
    async call(method, path, body) {
      const response = await fetch(`${controlPlaneUrl}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
  };
}

export async function provision(admin: AdminClient, request: ProvisionRequest): Promise<Provisioned> {
  await ensureConnection(admin, request);
  for (const other of QUICKSTART_CONNECTIONS) {
    if (other !== request.connection) await removeIfOurs(admin, other);
  }
  // Every launcher connection, not just this run's: switching between the
  // demo and a real runtime must not leave the other one's agent token valid.
  let revokedAgents = 0;
  for (const connection of QUICKSTART_CONNECTIONS) revokedAgents += await revokeAgents(admin, connection);
  const revokedKeys = await revokeApiKeys(admin);

  const agent = bodyOf(
    await admin.call("POST", `/connections/${request.connection}/agents`, { name: QUICKSTART_NAME }),
    201,
    "issue an agent token",
  );
  const apiKey = bodyOf(
    await admin.call("POST", "/api-keys", { name: QUICKSTART_NAME, groups: [QUICKSTART_NAME] }),
    201,
    "issue an API key",
  );
  await ensurePolicy(admin, request.connection);
  return {
    agent: { id: agent.id, token: agent.token },
    apiKey: { id: apiKey.id, key: apiKey.key },
    revoked: { agents: revokedAgents, apiKeys: revokedKeys },
  };
}

/** Creates the connection, or brings an existing one in line with this run's runtime. */
async function ensureConnection(admin: AdminClient, request: ProvisionRequest): Promise<void> {
  const existing = await admin.call("GET", `/connections/${request.connection}`);
  if (existing.status === 404) {
    bodyOf(
      await admin.call("POST", "/connections", {
        name: request.connection,
        protocol: request.protocol,
        models: request.models,
        description: CREATED_BY,
      }),
      201,
      `create the connection "${request.connection}"`,
    );
    return;
  }
  const current = bodyOf(existing, 200, `read the connection "${request.connection}"`);
  const sameModels =
    current.models.length === request.models.length &&
    request.models.every((model: string) => current.models.includes(model));
  if (current.protocol === request.protocol && sameModels) return;
  bodyOf(
    await admin.call("PATCH", `/connections/${request.connection}`, {
      protocol: request.protocol,
      models: request.models,
    }),
    200,
    `update the connection "${request.connection}"`,
  );
}

/**
 * Policies deny by default: the launcher's key (group "quickstart") gets
 * inference, embeddings, model listing and health reads on this run's
 * connection, nothing else. A policy of that name someone edited by hand is
 * left as it is.
 */
async function ensurePolicy(admin: AdminClient, connection: QuickstartConnection): Promise<void> {
  const policy = {
    name: QUICKSTART_NAME,
    description: CREATED_BY,
    subjects: { groups: [QUICKSTART_NAME] },
    resources: [{ connection, models: ["*"] }],
    operations: ["inference", "embeddings", "models.list", "read"],
  };
  const existing = (await listAll(admin, "/policies", "list policies")).find((item) => item.name === QUICKSTART_NAME);
  if (!existing) {
    bodyOf(await admin.call("POST", "/policies", policy), 201, "create the quickstart policy");
    return;
  }
  if (existing.description !== CREATED_BY) return;
  bodyOf(await admin.call("PUT", `/policies/${existing.id}`, policy), 200, "update the quickstart policy");
}

/**
 * Removes the connection of the other runtime kind (`demo` when a real
 * runtime is configured, and the reverse): no agent serves it any more, yet
 * its models would still be listed to callers. Only when this launcher made
 * it; a connection someone created or edited by hand is left alone.
 */
async function removeIfOurs(admin: AdminClient, connection: string): Promise<void> {
  const existing = await admin.call("GET", `/connections/${connection}`);
  if (existing.status === 404) return;
  if (bodyOf(existing, 200, `read the connection "${connection}"`).description !== CREATED_BY) return;
  bodyOf(await admin.call("DELETE", `/connections/${connection}`), 204, `remove the connection "${connection}"`);
}

async function revokeAgents(admin: AdminClient, connection: string): Promise<number> {
  const agents = await listAll(admin, `/agents?connection=${connection}`, "list agents");
  const stale = agents.filter((agent) => agent.name === QUICKSTART_NAME && agent.status === "active");
  for (const agent of stale) {
    const revoked = await admin.call("DELETE", `/agents/${agent.id}`);
    bodyOf(revoked, 204, `revoke the agent ${agent.id}`);
  }
  return stale.length;
}

async function revokeApiKeys(admin: AdminClient): Promise<number> {
  const keys = await listAll(admin, "/api-keys", "list API keys");
  // Expired keys already do not work; revoking them would only add audit noise.
  const stale = keys.filter((key) => key.name === QUICKSTART_NAME && key.status === "active");
  for (const key of stale) {
    const revoked = await admin.call("DELETE", `/api-keys/${key.id}`);
    bodyOf(revoked, 204, `revoke the API key ${key.id}`);
  }
  return stale.length;
}

interface ListedItem {
  id: string;
  name: string;
  status?: string;
  description?: string | null;
}

async function listAll(admin: AdminClient, path: string, what: string): Promise<ListedItem[]> {
  const items: ListedItem[] = [];
  const separator = path.includes("?") ? "&" : "?";
  let cursor: string | null = null;
  do {
    const query: string = `${separator}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page = bodyOf(await admin.call("GET", `${path}${query}`), 200, what);
    items.push(...(page.items as ListedItem[]));
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

/** The body of an answer with the expected status; anything else fails with the API's own explanation. */
// biome-ignore lint/suspicious/noExplicitAny: see AdminClient
function bodyOf(answer: { status: number; body: any }, status: number, what: string): any {
  if (answer.status === status) return answer.body;
  const problem = answer.body ?? {};
  const details = Array.isArray(problem.errors)
    ? problem.errors.map((issue: { path: string; message: string }) => ` ${issue.path}: ${issue.message};`).join("")
    : "";
  throw new Error(
    `could not ${what}: the control plane answered ${answer.status} ${problem.code ?? ""} ${problem.detail ?? ""}${details}`.trim(),
  );
}
