import { EventEmitter } from "node:events";
import { AgentPool, type AgentTunnel } from "./agent-pool.js";
import { type ExchangeCall, Slot } from "./slot.js";

/** Just enough of a gRPC server stream for a slot: events and the flags it reads. */
function fakeStream(): ExchangeCall {
  const stream = new EventEmitter() as EventEmitter & {
    cancelled: boolean;
    destroyed: boolean;
    writableEnded: boolean;
  };
  stream.cancelled = false;
  stream.destroyed = false;
  stream.writableEnded = false;
  return stream as unknown as ExchangeCall;
}

function tunnel(id: string, overrides: Partial<AgentTunnel> = {}): AgentTunnel {
  return {
    tunnelId: id,
    agentId: `agent-${id}`,
    agentName: id,
    connectionId: "c1",
    agentVersion: "test",
    capacity: 4,
    state: "connected",
    inFlight: 0,
    runtimeHealthy: true,
    lastHeartbeatAt: 0,
    lastLeaseSeq: 0,
    slots: new Set(),
    idle: [],
    close: () => undefined,
    ...overrides,
  };
}

function openSlot(pool: AgentPool, entry: AgentTunnel): Slot {
  const slot = new Slot(fakeStream(), (closed) => pool.removeSlot(entry.tunnelId, closed));
  pool.addSlot(entry.tunnelId, slot);
  return slot;
}

function withSlots(pool: AgentPool, entry: AgentTunnel, count: number): AgentTunnel {
  pool.add(entry);
  for (let i = 0; i < count; i++) openSlot(pool, entry);
  return entry;
}

describe("AgentPool", () => {
  it("picks the agent with the lowest in-flight/capacity ratio", async () => {
    const pool = new AgentPool();
    withSlots(pool, tunnel("a", { capacity: 2, inFlight: 1 }), 1);
    withSlots(pool, tunnel("b", { capacity: 8, inFlight: 2 }), 4);
    const lease = await pool.acquire("c1", { waitMs: 0 });
    expect(lease?.tunnel.tunnelId).toBe("b");
    expect(lease?.tunnel.inFlight).toBe(3);
    lease?.release(true);
    lease?.release(true);
    expect(pool.get("b")?.inFlight).toBe(2);
    expect(pool.get("b")?.idle).toHaveLength(4);
  });

  it("rotates between equally loaded agents and prefers healthy runtimes", async () => {
    const pool = new AgentPool();
    withSlots(pool, tunnel("a"), 4);
    withSlots(pool, tunnel("b"), 4);
    withSlots(pool, tunnel("sick", { runtimeHealthy: false }), 4);
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) {
      const lease = await pool.acquire("c1", { waitMs: 0 });
      picked.push(lease?.tunnel.tunnelId ?? "none");
      lease?.release(true);
    }
    expect(picked).toEqual(["a", "b", "a", "b"]);
  });

  it("uses an unhealthy runtime when it is the only one, skips draining and excluded agents", async () => {
    const pool = new AgentPool();
    withSlots(pool, tunnel("sick", { runtimeHealthy: false }), 1);
    withSlots(pool, tunnel("draining"), 1);
    pool.setDraining("draining");
    withSlots(pool, tunnel("tried"), 1);
    const lease = await pool.acquire("c1", { waitMs: 0, exclude: new Set(["tried"]) });
    expect(lease?.tunnel.tunnelId).toBe("sick");
  });

  it("makes a waiting request take the next slot that opens or is released", async () => {
    const pool = new AgentPool();
    const entry = withSlots(pool, tunnel("a", { capacity: 1 }), 0);
    const first = pool.acquire("c1", { waitMs: 1_000 });
    openSlot(pool, entry);
    const lease = await first;
    expect(lease?.tunnel.tunnelId).toBe("a");
    const second = pool.acquire("c1", { waitMs: 1_000 });
    lease?.release(true);
    expect((await second)?.slot).toBe(lease?.slot);
  });

  it("closes a slot released as not reusable", async () => {
    const pool = new AgentPool();
    const entry = withSlots(pool, tunnel("a"), 1);
    const lease = await pool.acquire("c1", { waitMs: 0 });
    lease?.release(false);
    expect(lease?.slot.closed).toBe(true);
    expect(entry.slots.size).toBe(0);
    expect(entry.idle).toHaveLength(0);
  });

  it("gives up after the wait, or at once when the caller leaves", async () => {
    const pool = new AgentPool();
    expect(await pool.acquire("c1", { waitMs: 20 })).toBeUndefined();
    const controller = new AbortController();
    const waiting = pool.acquire("c1", { waitMs: 10_000, signal: controller.signal });
    controller.abort();
    expect(await waiting).toBeUndefined();
  });

  it("forgets a slot that the agent cancels", async () => {
    const pool = new AgentPool();
    const entry = withSlots(pool, tunnel("a"), 1);
    const [slot] = entry.idle;
    (slot?.call as unknown as EventEmitter | undefined)?.emit("cancelled");
    expect(slot).toBeDefined();
    expect(entry.idle).toHaveLength(0);
    expect(await pool.acquire("c1", { waitMs: 0 })).toBeUndefined();
  });
});

describe("AgentPool waiters", () => {
  it("does not let a waiter that excludes the free agent block the ones behind it", async () => {
    const pool = new AgentPool();
    const entry = withSlots(pool, tunnel("a", { capacity: 1 }), 0);
    const picky = pool.acquire("c1", { waitMs: 200, exclude: new Set(["a"]) });
    const anyAgent = pool.acquire("c1", { waitMs: 1_000 });
    openSlot(pool, entry);
    expect((await anyAgent)?.tunnel.tunnelId).toBe("a");
    expect(await picky).toBeUndefined();
  });
});
