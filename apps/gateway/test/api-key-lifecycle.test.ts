// An API key's life after creation, end to end through a running gateway:
// a rotation gives the same key a new secret while the old one keeps working
// for an overlap, then stops at the gateway by its own clock (no push
// needed); changing a key's groups changes what it may do within a second;
// and an expiry set later stops the key at that time.
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { type Stack, startStack, waitFor } from "./stack.js";

// biome-ignore lint/suspicious/noExplicitAny: sessions are parsed JSON, asserted field by field
type Json = any;

let stack: Stack;
let runtime: RuntimeFixture;

beforeAll(async () => {
  // No blanket grant: each key here is granted only by the policies below.
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", { models: ["demo-chat"] });
  await stack.addAgent("llama", runtime);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

function complete(key: string) {
  return fetch(`${stack.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "hello" }] }),
  });
}

async function status(key: string): Promise<number> {
  const response = await complete(key);
  await response.arrayBuffer();
  return response.status;
}

/** Polls until a completion with `key` answers `expected`; returns how long that took. */
async function msUntilStatus(key: string, expected: number, timeoutMs = 5_000): Promise<number> {
  const started = performance.now();
  await waitFor(async () => (await status(key)) === expected, { timeoutMs, what: `HTTP ${expected}` });
  return performance.now() - started;
}

async function createKey(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const created = await stack.admin("POST", "/api-keys", body);
  if (created.status !== 201) throw new Error(`key refused: ${JSON.stringify(created.body)}`);
  return created.body;
}

async function createPolicy(body: Record<string, unknown>): Promise<void> {
  const created = await stack.admin("POST", "/policies", {
    resources: [{ connection: "llama", models: ["*"] }],
    operations: ["inference"],
    ...body,
  });
  if (created.status !== 201) throw new Error(`policy refused: ${JSON.stringify(created.body)}`);
}

async function sessionSubject(response: Response): Promise<Json> {
  return (await stack.storedSession(response.headers.get("x-modelgate-session"))).subject;
}

describe("rotation", () => {
  it("accepts both secrets during the overlap, only the new one after it, as the same key", async () => {
    // Granted by its id, not by a group: the grant must follow the key through the rotation.
    const { id, key: oldKey } = await createKey({ name: "rotated", groups: [] });
    await createPolicy({ name: "by-key-id", subjects: { apiKeys: [id] } });
    await msUntilStatus(oldKey, 200);

    const rotated = await stack.admin("POST", `/api-keys/${id}/rotate`, { overlapSeconds: 2 });
    expect(rotated.status).toBe(200);
    const newKey: string = rotated.body.key;
    const overlapEnds = Date.parse(rotated.body.previousKeyExpiresAt);
    expect(overlapEnds - Date.parse(rotated.body.rotatedAt)).toBe(2_000);
    const pushedWithin = await msUntilStatus(newKey, 200);
    expect(pushedWithin).toBeLessThan(1_000);

    const during = [await complete(oldKey), await complete(newKey)];
    expect(Date.now()).toBeLessThan(overlapEnds);
    expect(during.map((response) => response.status)).toEqual([200, 200]);
    // One subject whichever secret: sessions, policies and approvals see the key, not the secret.
    for (const response of during) {
      expect(await sessionSubject(response)).toMatchObject({ id, authMethod: "api_key" });
    }

    await waitFor(async () => (await status(oldKey)) === 401, { timeoutMs: 5_000, what: "the old secret to stop" });
    expect(Date.now()).toBeGreaterThanOrEqual(overlapEnds);
    const refused = await complete(oldKey);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: "unauthenticated" } });
    expect(await status(newKey)).toBe(200);
    expect((await stack.admin("GET", `/api-keys/${id}`)).body).toMatchObject({ previousKeyExpiresAt: null });
  });

  it("stops the old secret at the end of the overlap even when no push can reach the gateway", async () => {
    const { id, key: oldKey } = await createKey({ name: "rotated-offline", groups: ["offline"] });
    await createPolicy({ name: "offline-group", subjects: { groups: ["offline"] } });
    await msUntilStatus(oldKey, 200);
    const rotated = await stack.admin("POST", `/api-keys/${id}/rotate`, { overlapSeconds: 3 });
    const newKey: string = rotated.body.key;
    await msUntilStatus(newKey, 200);
    expect(await status(oldKey)).toBe(200);

    // The gateway keeps what it last received and hears nothing more.
    await stack.stopControlPlane();
    try {
      await waitFor(async () => (await status(oldKey)) === 401, { timeoutMs: 6_000, what: "the old secret to stop" });
      expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(rotated.body.previousKeyExpiresAt));
      expect(await status(newKey)).toBe(200);
    } finally {
      await stack.startControlPlane();
    }
    await waitFor(
      async () => ((await (await fetch(`${stack.gateway.opsUrl}/readyz`)).json()) as Json).config?.source === "live",
      { timeoutMs: 15_000, what: "the gateway to reconnect" },
    );
    expect(await status(oldKey)).toBe(401);
    expect(await status(newKey)).toBe(200);
  }, 30_000);

  it("stops every earlier secret at once when rotated with no overlap", async () => {
    const { id, key: first } = await createKey({ name: "leaked", groups: ["leaky"] });
    await createPolicy({ name: "leaky-group", subjects: { groups: ["leaky"] } });
    await msUntilStatus(first, 200);
    const second = (await stack.admin("POST", `/api-keys/${id}/rotate`, { overlapSeconds: 600 })).body.key;
    await msUntilStatus(second, 200);
    expect(await status(first)).toBe(200);

    const third = await stack.admin("POST", `/api-keys/${id}/rotate`, { overlapSeconds: 0 });
    expect(third.status).toBe(200);
    expect(await msUntilStatus(first, 401)).toBeLessThan(1_000);
    expect(await status(second)).toBe(401);
    expect(await status(third.body.key)).toBe(200);
  });
});

describe("updates", () => {
  it("changes what a key may do within a second when its groups change", async () => {
    const { id, key } = await createKey({ name: "regrouped", groups: ["writers"] });
    await createPolicy({ name: "writers", subjects: { groups: ["writers"] } });
    await msUntilStatus(key, 200);

    const narrowed = await stack.admin("PATCH", `/api-keys/${id}`, { groups: ["readers"] });
    expect(narrowed.status).toBe(200);
    const refusedWithin = await msUntilStatus(key, 403);
    const refused = await complete(key);
    expect(await refused.json()).toMatchObject({ error: { code: "model_not_allowed" } });

    expect((await stack.admin("PATCH", `/api-keys/${id}`, { groups: ["readers", "writers"] })).status).toBe(200);
    const grantedWithin = await msUntilStatus(key, 200);
    expect(Math.max(refusedWithin, grantedWithin)).toBeLessThan(1_000);
  });

  it("refuses an expiry in the past, and stops the key at a near-future one", async () => {
    const { id, key } = await createKey({ name: "expiring", groups: ["expiring"] });
    await createPolicy({ name: "expiring-group", subjects: { groups: ["expiring"] } });
    await msUntilStatus(key, 200);

    const past = await stack.admin("PATCH", `/api-keys/${id}`, {
      expiresAt: new Date(Date.now() - 1_000).toISOString(),
    });
    expect(past.status).toBe(400);
    expect(past.body.errors).toContainEqual({ path: "body.expiresAt", message: "must be in the future" });
    expect(await status(key)).toBe(200);

    const expiresAt = new Date(Date.now() + 1_500).toISOString();
    expect((await stack.admin("PATCH", `/api-keys/${id}`, { expiresAt })).status).toBe(200);
    await waitFor(async () => (await status(key)) === 401, { what: "the key to expire" });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    expect((await stack.admin("GET", `/api-keys/${id}`)).body.status).toBe("expired");

    // A later expiry brings it back; removing it keeps it.
    expect((await stack.admin("PATCH", `/api-keys/${id}`, { expiresAt: null })).status).toBe(200);
    expect(await msUntilStatus(key, 200)).toBeLessThan(1_000);
  });
});
