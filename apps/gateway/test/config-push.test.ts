// Configuration reaches running gateways by push, within a second, and a
// gateway that loses the control plane keeps serving what it last knew.
import { hashSecret } from "@modelgate/core";
import { type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  const runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
});

afterAll(async () => {
  await stack?.close();
});

function listModels(key: string) {
  return fetch(`${stack.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
}

async function readiness(): Promise<{ config?: { source?: string } }> {
  return (await fetch(`${stack.gateway.opsUrl}/readyz`)).json() as Promise<{ config?: { source?: string } }>;
}

/** Polls until the gateway answers with `status`; returns how long that took. */
async function msUntilStatus(key: string, status: number, timeoutMs = 5_000): Promise<number> {
  const started = performance.now();
  await waitFor(async () => (await listModels(key)).status === status, {
    timeoutMs,
    what: `HTTP ${status}`,
  });
  return performance.now() - started;
}

describe("configuration push", () => {
  it("makes a new API key usable and a revoked one useless within 1 s", async () => {
    const created = await stack.admin("POST", "/api-keys", { name: "short-lived", groups: [] });
    expect(created.status).toBe(201);
    expect(await msUntilStatus(created.body.key, 200)).toBeLessThan(1_000);

    expect((await stack.admin("DELETE", `/api-keys/${created.body.id}`)).status).toBe(204);
    expect(await msUntilStatus(created.body.key, 401)).toBeLessThan(1_000);
  });

  it("recovers when the control plane's change listener loses its database connection", async () => {
    const terminated = await stack.controlPlane.db.$queryRaw<{ terminated: boolean }[]>`
      SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
      WHERE datname = current_database() AND query = 'LISTEN modelgate_config'`;
    expect(terminated).toEqual([{ terminated: true }]);
    // The listener reconnects (and rebuilds once, catching up); later
    // changes arrive well before the 30 s periodic resync would bring them.
    await waitFor(
      async () =>
        (
          await stack.controlPlane.db.$queryRaw<{ n: bigint }[]>`
            SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND query = 'LISTEN modelgate_config'`
        )[0]?.n === 1n,
      { what: "the listener to reconnect" },
    );
    const created = await stack.admin("POST", "/api-keys", { name: "after-listener-loss", groups: [] });
    expect(await msUntilStatus(created.body.key, 200)).toBeLessThan(1_000);
  });

  it("refuses a key once its expiry passes, without waiting for a push", async () => {
    const expiresAt = new Date(Date.now() + 1_500).toISOString();
    const created = await stack.admin("POST", "/api-keys", { name: "expiring", groups: [], expiresAt });
    expect(created.status).toBe(201);
    await msUntilStatus(created.body.key, 200);
    await waitFor(async () => (await listModels(created.body.key)).status === 401, { what: "expiry" });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
  });

  it("keeps serving with the last-known configuration while the control plane is down, and says so", async () => {
    await stack.stopControlPlane();
    await waitFor(
      async () => {
        return (await readiness()).config?.source === "last-known";
      },
      { what: "readyz to report the last-known configuration" },
    );
    const readyz = await fetch(`${stack.gateway.opsUrl}/readyz`);
    expect(readyz.status).toBe(200);
    const metrics = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
    expect(metrics).toContain("modelgate_config_live 0");
    expect(metrics).toMatch(/modelgate_config_received_timestamp_seconds \d{10}/);
    expect((await listModels(stack.apiKey)).status).toBe(200);
    const completion = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "still there?" }] }),
    });
    expect(completion.status).toBe(200);

    await stack.startControlPlane();
    await waitFor(async () => (await readiness()).config?.source === "live", {
      timeoutMs: 15_000,
      what: "the gateway to reconnect to the control plane",
    });
    // Changes made after the reconnect arrive as before.
    const created = await stack.admin("POST", "/api-keys", { name: "after-restart", groups: [] });
    expect(await msUntilStatus(created.body.key, 200)).toBeLessThan(1_000);
    expect(stack.gateway.store.apiKeyByHash(hashSecret(created.body.key))).toBeDefined();
  }, 30_000);
});
