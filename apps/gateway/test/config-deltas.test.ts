// Configuration reaches gateways as versioned deltas: every connected gateway
// gets each change as a small delta, a gateway that comes back gets the
// deltas it missed, and a snapshot goes only to one that holds nothing
// usable. Real control planes (two replicas on one database), real gRPC,
// real gateways and the gateway's own ConfigClient and ConfigStore.
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { recordConfigChange, startControlPlane } from "@modelgate/control-plane";
import { hashSecret, uuidv7 } from "@modelgate/core";
import { createDatabaseClient } from "@modelgate/db";
import {
  type ConfigSnapshotInput,
  type ConfigUpdate,
  channelCredentials,
  type GatewayConfigHandlers,
  type GatewayReport,
  loadConfigProto,
} from "@modelgate/protocol";
import { ConfigClient } from "../src/config-client.js";
import { type ConfigChange, ConfigStore } from "../src/config-store.js";
import { captureLogger, type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
const log = captureLogger("config-clients");

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
});

function recordChanges(store: ConfigStore): ConfigChange[] {
  const changes: ConfigChange[] = [];
  store.on("change", (change: ConfigChange) => changes.push(change));
  return changes;
}

async function headRevision(): Promise<number> {
  const head = await stack.controlPlane.db.configHead.findUniqueOrThrow({ where: { id: 1 } });
  return Number(head.revision);
}

let clients = 0;
/** A gateway's configuration side alone: its ConfigClient filling a ConfigStore. */
async function connectClient(address: string, store = new ConfigStore()) {
  const changes = recordChanges(store);
  clients += 1;
  const client = new ConfigClient({
    address,
    credentials: channelCredentials(undefined),
    token: stack.gatewayToken,
    gatewayId: `config-client-${clients}`,
    version: "test",
    publicUrl: "http://127.0.0.1",
    store,
    logger: log.logger,
    agents: () => [],
  });
  client.start();
  await once(client, "connected");
  return { client, store, changes };
}

async function createKey(name: string, groups: string[] = ["everyone"]) {
  const created = await stack.admin("POST", "/api-keys", { name, groups });
  expect(created.status).toBe(201);
  return created.body as { id: string; key: string };
}

function startReplica(configDistribution: NonNullable<Parameters<typeof startControlPlane>[0]["configDistribution"]>) {
  return startControlPlane({
    host: "127.0.0.1",
    port: 0,
    ops: { host: "127.0.0.1", port: 0 },
    grpc: { host: "127.0.0.1", port: 0 },
    databaseUrl: stack.databaseUrl,
    dbPoolSize: 2,
    adminToken: stack.adminToken,
    gatewayToken: stack.gatewayToken,
    version: "test",
    logger: captureLogger("replica").logger,
    configDistribution,
  });
}

/** A raw Subscribe or Watch stream, read message by message. */
function rawStream<T>(address: string, method: "subscribe" | "watch") {
  const { GatewayConfig } = loadConfigProto().modelgate.config.v1;
  const client = new GatewayConfig(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${stack.gatewayToken}`);
  const call = (
    method === "subscribe" ? client.subscribe(metadata) : client.watch(metadata)
  ) as grpc.ClientDuplexStream<GatewayReport, T>;
  const received: T[] = [];
  const waiting: ((message: T) => void)[] = [];
  call.on("data", (message: T) => {
    const next = waiting.shift();
    if (next) next(message);
    else received.push(message);
  });
  call.on("error", () => undefined);
  return {
    write: (report: Partial<GatewayReport>) => call.write(report),
    next: (): Promise<T> => {
      const queued = received.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close() {
      call.cancel();
      client.close();
    },
  };
}

const hello = (extra: { epoch?: string; revision?: number } = {}) => ({
  hello: { gatewayId: "raw", version: "test", publicUrl: "", epoch: "", revision: 0, ...extra },
});

function modelsStatus(url: string, key: string) {
  return fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((response) => response.status);
}

describe("configuration deltas", () => {
  it("tells every connected gateway of a revoked key with one delta, and each refuses the key", async () => {
    const gateways = [stack.gateway, await stack.addGateway(), await stack.addGateway()];
    const key = await createKey("everywhere");
    for (const gateway of gateways) {
      await waitFor(async () => (await modelsStatus(gateway.url, key.key)) === 200, { what: "the new key" });
    }
    const changes = gateways.map((gateway) => recordChanges(gateway.store));

    expect((await stack.admin("DELETE", `/api-keys/${key.id}`)).status).toBe(204);
    const revision = await headRevision();
    for (const gateway of gateways) {
      await waitFor(async () => (await modelsStatus(gateway.url, key.key)) === 401, { what: "the revocation" });
    }
    for (const received of changes) {
      expect(received).toEqual([{ kind: "delta", revision, removedAgents: [], policyProblems: [] }]);
    }
  });

  it("publishes exactly what services record as configuration, with or without an admin audit entry", async () => {
    const store = stack.gateway.store;
    const key = await createKey("revoked-outside-the-api");
    await waitFor(() => store.apiKeyByHash(hashSecret(key.key)) !== undefined, { what: "the key" });
    const changes = recordChanges(store);
    const revisionBefore = store.revision;

    // An alert rule is recorded in the admin audit log but is nothing
    // gateways enforce: no revision, no message to any gateway.
    expect((await stack.admin("POST", "/alert-rules", { name: "quiet", kind: "approval_requested" })).status).toBe(201);
    // A change that writes no admin audit entry, only its configuration
    // change, still reaches the gateways: publishing is its own step.
    await stack.controlPlane.db.$transaction(async (tx) => {
      await tx.apiKey.update({ where: { id: key.id }, data: { revokedAt: new Date() } });
      await recordConfigChange(tx, [{ kind: "api_key", id: key.id }]);
    });
    await waitFor(() => store.apiKeyByHash(hashSecret(key.key)) === undefined, { what: "the revocation" });
    expect(changes).toEqual([expect.objectContaining({ kind: "delta", revision: revisionBefore + 1 })]);
    expect(await headRevision()).toBe(revisionBefore + 1);
    const audited = await stack.controlPlane.db.adminAuditLog.count({
      where: { targetId: key.id, action: "api_key.revoke" },
    });
    expect(audited).toBe(0);
  });

  it("catches a reconnecting gateway up with the deltas it missed, not a snapshot", async () => {
    const staying = await createKey("staying");
    const leaving = await createKey("leaving");
    const first = await connectClient(stack.controlPlane.grpcAddress);
    expect(first.changes.map((change) => change.kind)).toEqual(["snapshot"]);
    expect(first.store.apiKeyByHash(hashSecret(leaving.key))).toBeDefined();
    first.client.close();

    const added = await createKey("added-while-away");
    expect((await stack.admin("DELETE", `/api-keys/${leaving.id}`)).status).toBe(204);
    const policy = await stack.admin("POST", "/policies", {
      name: "added-while-away",
      subjects: { groups: ["late"] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
    });
    expect(policy.status).toBe(201);
    const policies = first.store.policies.size;

    const again = await connectClient(stack.controlPlane.grpcAddress, first.store);
    await waitFor(async () => again.store.revision === (await headRevision()), { what: "the catch-up" });
    expect(again.changes.length).toBeGreaterThan(0);
    expect(again.changes.every((change) => change.kind === "delta")).toBe(true);
    expect(again.store.apiKeyByHash(hashSecret(added.key))).toBeDefined();
    expect(again.store.apiKeyByHash(hashSecret(leaving.key))).toBeUndefined();
    expect(again.store.apiKeyByHash(hashSecret(staying.key))).toBeDefined();
    expect(again.store.policies.size).toBe(policies + 1);
    again.client.close();
  });

  it("serves deltas from any replica, and a snapshot to a gateway further behind than it sends deltas for", async () => {
    // Second control planes on the same database, which send a snapshot
    // instead of a delta naming more than two entities.
    const replica = await startReplica({ maxDeltaEntities: 2 });
    const gateway = await connectClient(replica.grpcAddress);
    try {
      expect(gateway.changes.map((change) => change.kind)).toEqual(["snapshot"]);
      // A change made through the other replica reaches this one's gateway.
      const near = await createKey("through-the-other-replica");
      await waitFor(() => gateway.store.apiKeyByHash(hashSecret(near.key)) !== undefined, { what: "the delta" });
      expect(gateway.changes.map((change) => change.kind)).toEqual(["snapshot", "delta"]);
    } finally {
      gateway.client.close();
      await replica.close();
    }

    // A replica that starts now has published nothing it could reuse: what
    // the gateway missed comes from Postgres.
    const one = await createKey("missed-1");
    const restarted = await startReplica({ maxDeltaEntities: 2 });
    try {
      const behindByOne = await connectClient(restarted.grpcAddress, gateway.store);
      expect(behindByOne.changes.map((change) => change.kind)).toEqual(["delta"]);
      expect(gateway.store.apiKeyByHash(hashSecret(one.key))).toBeDefined();
      behindByOne.client.close();
    } finally {
      await restarted.close();
    }

    const missed = [await createKey("missed-2"), await createKey("missed-3"), await createKey("missed-4")];
    const another = await startReplica({ maxDeltaEntities: 2 });
    try {
      const farBehind = await connectClient(another.grpcAddress, gateway.store);
      expect(farBehind.changes.map((change) => change.kind)).toEqual(["snapshot"]);
      for (const key of missed) expect(gateway.store.apiKeyByHash(hashSecret(key.key))).toBeDefined();
      farBehind.client.close();
    } finally {
      await another.close();
    }
  });

  it("sends a snapshot to a gateway whose revision was pruned", async () => {
    const gateway = await connectClient(stack.controlPlane.grpcAddress);
    gateway.client.close();
    const missed = await createKey("missed-before-pruning");
    const revision = await headRevision();
    const replica = await startReplica({ retentionMs: 0, pruneIntervalMs: 20 });
    try {
      await waitFor(
        async () =>
          (await stack.controlPlane.db.configHead.findUniqueOrThrow({ where: { id: 1 } })).prunedThrough ===
          BigInt(revision),
        { what: "the changes to be pruned" },
      );
      const back = await connectClient(replica.grpcAddress, gateway.store);
      expect(back.changes.map((change) => change.kind)).toEqual(["snapshot"]);
      expect(back.store.apiKeyByHash(hashSecret(missed.key))).toBeDefined();
      back.client.close();
    } finally {
      await replica.close();
    }
  });

  it("answers what a gateway says it holds: the empty delta when current, a snapshot for another history or on request", async () => {
    const address = stack.controlPlane.grpcAddress;
    const current = await connectClient(address);
    const { epoch, revision } = current.store;
    current.client.close();

    const upToDate = rawStream<ConfigUpdate>(address, "subscribe");
    upToDate.write(hello({ epoch, revision }));
    expect(await upToDate.next()).toMatchObject({
      kind: "delta",
      delta: { epoch, baseRevision: revision, revision, apiKeys: [], removedApiKeyIds: [] },
    });
    // A gateway that cannot apply what it got asks for a snapshot.
    upToDate.write({ snapshotRequest: { revision, reason: "SNAPSHOT_REASON_GAP" } });
    expect(await upToDate.next()).toMatchObject({ kind: "snapshot", snapshot: { epoch, revision } });
    upToDate.close();

    // The same revision of another database's history is not the same configuration.
    const elsewhere = rawStream<ConfigUpdate>(address, "subscribe");
    elsewhere.write(hello({ epoch: "4f1c2f0e-0000-4000-8000-000000000000", revision }));
    expect(await elsewhere.next()).toMatchObject({ kind: "snapshot", snapshot: { epoch, revision } });
    elsewhere.close();

    // So is a revision this history has not reached (a database restored from an older backup).
    const ahead = rawStream<ConfigUpdate>(address, "subscribe");
    ahead.write(hello({ epoch, revision: revision + 1000 }));
    expect(await ahead.next()).toMatchObject({ kind: "snapshot", snapshot: { epoch, revision } });
    ahead.close();
  });

  it("asks for a snapshot when a delta does not start at the revision it holds, and ignores deltas until it comes", async () => {
    // A control plane that misbehaves on purpose: only a scripted peer can
    // send a delta with a gap.
    const epoch = "9d7a8c51-1b2e-4c3d-8e9f-0a1b2c3d4e5f";
    const snapshotAt = (revision: number, keys: string[]): ConfigSnapshotInput => ({
      epoch,
      revision,
      connections: [],
      agents: [],
      policies: [],
      apiKeys: keys.map((id) => ({
        id,
        name: id,
        keyHash: `hash-${id}`,
        groups: [],
        expiresAt: 0,
        previousKeyHash: "",
        previousKeyExpiresAt: 0,
      })),
    });
    const requests: GatewayReport["snapshotRequest"][] = [];
    const subscribe: GatewayConfigHandlers["Subscribe"] = (call) => {
      call.on("data", (report: GatewayReport) => {
        if (report.hello) {
          call.write({ snapshot: snapshotAt(1, ["k1"]) });
          // Revision 2 never arrives: a gap.
          call.write({ delta: { epoch, baseRevision: 2, revision: 3, removedApiKeyIds: ["k1"] } });
          call.write({ delta: { epoch, baseRevision: 3, revision: 4, removedApiKeyIds: ["k1"] } });
        } else if (report.snapshotRequest) {
          requests.push(report.snapshotRequest);
          call.write({ snapshot: snapshotAt(4, ["k2"]) });
        }
      });
    };
    const server = new grpc.Server();
    server.addService(loadConfigProto().modelgate.config.v1.GatewayConfig.service, {
      Subscribe: subscribe,
      Watch: () => undefined,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    try {
      const gateway = await connectClient(`127.0.0.1:${port}`);
      await waitFor(() => gateway.store.revision === 4, { what: "the snapshot after the gap" });
      expect(requests).toEqual([{ revision: 1, reason: "SNAPSHOT_REASON_GAP" }]);
      expect(gateway.changes.map((change) => [change.kind, change.revision])).toEqual([
        ["snapshot", 1],
        ["snapshot", 4],
      ]);
      expect(gateway.store.apiKeyByHash("hash-k1")).toBeUndefined();
      expect(gateway.store.apiKeyByHash("hash-k2")).toBeDefined();
      gateway.client.close();
    } finally {
      server.forceShutdown();
    }
  });

  it("keeps every gateway in step with the database under concurrent changes, in revision order", async () => {
    const gateways = [
      await connectClient(stack.controlPlane.grpcAddress),
      await connectClient(stack.controlPlane.grpcAddress),
    ];
    const existing = await Promise.all(Array.from({ length: 8 }, (_, index) => createKey(`doomed-${index}`)));
    const startRevision = await headRevision();
    const results = await Promise.all([
      ...Array.from({ length: 12 }, (_, index) => createKey(`concurrent-${index}`)),
      ...existing.map((key) => stack.admin("DELETE", `/api-keys/${key.id}`)),
      ...Array.from({ length: 4 }, (_, index) =>
        stack.admin("POST", "/policies", {
          name: `concurrent-${index}`,
          subjects: { groups: [`team-${index}`] },
          resources: [{ connection: "llama" }],
          operations: ["inference"],
        }),
      ),
    ]);
    const created = results.slice(0, 12) as { id: string; key: string }[];
    const finalRevision = await headRevision();
    expect(finalRevision).toBe(startRevision + 12 + 8 + 4);

    // Every revision was recorded once, with no gap.
    const rows = await stack.controlPlane.db.$queryRaw<{ revisions: bigint; lowest: bigint; highest: bigint }[]>`
      SELECT count(DISTINCT revision) AS revisions, min(revision) AS lowest, max(revision) AS highest
      FROM config_changes WHERE revision > ${startRevision}`;
    expect(rows[0]).toEqual({
      revisions: 24n,
      lowest: BigInt(startRevision + 1),
      highest: BigInt(finalRevision),
    });

    const fresh = await connectClient(stack.controlPlane.grpcAddress);
    await waitFor(() => fresh.store.revision === finalRevision, { what: "a fresh snapshot" });
    for (const gateway of [...gateways, { store: stack.gateway.store, changes: [] as ConfigChange[] }]) {
      await waitFor(() => gateway.store.revision === finalRevision, { what: "every gateway to catch up" });
      for (const key of created) expect(gateway.store.apiKeyByHash(hashSecret(key.key))).toBeDefined();
      for (const key of existing) expect(gateway.store.apiKeyByHash(hashSecret(key.key))).toBeUndefined();
      expect(gateway.store.policies.size).toBe(fresh.store.policies.size);
      expect([...gateway.store.connections()]).toEqual([...fresh.store.connections()]);
    }
    for (const gateway of gateways) {
      const applied = gateway.changes.slice(1);
      expect(applied.every((change) => change.kind === "delta")).toBe(true);
      const revisions = applied.map((change) => change.revision);
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
      expect(new Set(revisions).size).toBe(revisions.length);
    }
    for (const client of [...gateways, fresh]) client.client.close();
  });

  it("brings a gateway up to date with a delta after a control-plane restart", async () => {
    const gateway = stack.gateway;
    const key = await createKey("revoked-while-the-control-plane-was-down");
    await waitFor(async () => (await modelsStatus(gateway.url, key.key)) === 200, { what: "the key" });
    const changes = recordChanges(gateway.store);

    await stack.stopControlPlane();
    // Another replica, or an import script, changes the configuration meanwhile.
    const db = createDatabaseClient({ databaseUrl: stack.databaseUrl, maxConnections: 1 });
    await db.$transaction(async (tx) => {
      await tx.apiKey.update({ where: { id: key.id }, data: { revokedAt: new Date() } });
      await recordConfigChange(tx, [{ kind: "api_key", id: key.id }]);
    });
    await db.$disconnect();
    expect(await modelsStatus(gateway.url, key.key)).toBe(200);

    await stack.startControlPlane();
    await waitFor(async () => (await modelsStatus(gateway.url, key.key)) === 401, {
      timeoutMs: 15_000,
      what: "the gateway to reconnect and catch up",
    });
    expect(changes.map((change) => change.kind)).toEqual(["delta"]);
  }, 30_000);

  it("still sends whole snapshots on the deprecated Watch stream, for gateways that predate deltas", async () => {
    const legacy = rawStream<{ revision: number; apiKeys: { keyHash: string }[] }>(
      stack.controlPlane.grpcAddress,
      "watch",
    );
    legacy.write(hello());
    const first = await legacy.next();
    expect(first.revision).toBe(await headRevision());
    const key = await createKey("seen-by-an-old-gateway");
    const next = await legacy.next();
    expect(next.revision).toBe(first.revision + 1);
    expect(next.apiKeys.map((apiKey) => apiKey.keyHash)).toContain(hashSecret(key.key));
    legacy.close();
  });

  it("sends a snapshot larger than gRPC's default 4 MiB (an import of 40,000 keys) where a delta would be larger, then deltas", async () => {
    // An import script writes its keys and records them as one change, in
    // one transaction, as any writer outside the API must.
    const ids = Array.from({ length: 40_000 }, () => uuidv7());
    const hashes = ids.map((_, index) => hashSecret(`bulk-${index}`));
    const connected = recordChanges(stack.gateway.store);
    await stack.controlPlane.db.$transaction(async (tx) => {
      await tx.$executeRaw`
        INSERT INTO api_keys (id, name, groups, key_hash, key_prefix, created_by)
        SELECT id, 'bulk-' || ordinality, ARRAY['bulk-group-with-a-realistic-name'], key_hash, 'mg_bulk', 'test'
        FROM unnest(${ids}::uuid[], ${hashes}::text[]) WITH ORDINALITY AS imported(id, key_hash, ordinality)`;
      await recordConfigChange(
        tx,
        ids.map((id) => ({ kind: "api_key" as const, id })),
      );
    });
    // Naming more than 10,000 entities, the change reaches connected
    // gateways as a snapshot.
    await waitFor(() => stack.gateway.store.apiKeyByHash(hashSecret("bulk-39999")) !== undefined, {
      timeoutMs: 20_000,
      what: "the import to reach the gateway",
    });
    expect(connected.map((change) => change.kind)).toEqual(["snapshot"]);

    const gateway = await connectClient(stack.controlPlane.grpcAddress);
    expect(gateway.changes.map((change) => change.kind)).toEqual(["snapshot"]);
    expect(gateway.store.apiKeyByHash(hashSecret("bulk-0"))).toBeDefined();

    const key = await createKey("among-many");
    await waitFor(() => gateway.store.apiKeyByHash(hashSecret(key.key)) !== undefined, { what: "the new key" });
    expect((await stack.admin("DELETE", `/api-keys/${key.id}`)).status).toBe(204);
    await waitFor(() => gateway.store.apiKeyByHash(hashSecret(key.key)) === undefined, { what: "the revocation" });
    expect(gateway.changes.map((change) => change.kind)).toEqual(["snapshot", "delta", "delta"]);
    gateway.client.close();
  }, 60_000);
});
