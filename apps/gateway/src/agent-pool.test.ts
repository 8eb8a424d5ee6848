import { EventEmitter } from "node:events";
import { AgentPool, type AgentTunnel, type ExchangeCall } from "./agent-pool.js";

/** Just enough of a parked gRPC stream for the pool: events and end(). */
function parkedStream(): ExchangeCall {
  const stream = new EventEmitter() as EventEmitter & { end(): void; ended: boolean };
  stream.ended = false;
  stream.end = () => {
    stream.ended = true;
  };
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
    parked: [],
    close: () => undefined,
    ...overrides,
  };
}

function withParked(pool: AgentPool, entry: AgentTunnel, count: number): AgentTunnel {
  pool.add(entry);
  for (let i = 0; i < count; i++) pool.park(entry.tunnelId, parkedStream());
  return entry;
}

describe("AgentPool", () => {
  it("picks the agent with the lowest in-flight/capacity ratio", async () => {
    const pool = new AgentPool();
    withParked(pool, tunnel("a", { capacity: 2, inFlight: 1 }), 1);
    withParked(pool, tunnel("b", { capacity: 8, inFlight: 2 }), 4);
    const lease = await pool.acquire("c1", { waitMs: 0 });
    expect(lease?.tunnel.tunnelId).toBe("b");
    expect(lease?.tunnel.inFlight).toBe(3);
    lease?.release();
    lease?.release();
    expect(pool.get("b")?.inFlight).toBe(2);
  });

  it("rotates between equally loaded agents and prefers healthy runtimes", async () => {
    const pool = new AgentPool();
    withParked(pool, tunnel("a"), 4);
    withParked(pool, tunnel("b"), 4);
    withParked(pool, tunnel("sick", { runtimeHealthy: false }), 4);
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) {
      const lease = await pool.acquire("c1", { waitMs: 0 });
      picked.push(lease?.tunnel.tunnelId ?? "none");
      lease?.release();
    }
    expect(picked).toEqual(["a", "b", "a", "b"]);
  });

  it("uses an unhealthy runtime when it is the only one, skips draining and excluded agents", async () => {
    const pool = new AgentPool();
    withParked(pool, tunnel("sick", { runtimeHealthy: false }), 1);
    withParked(pool, tunnel("draining"), 1);
    pool.setDraining("draining");
    withParked(pool, tunnel("tried"), 1);
    const lease = await pool.acquire("c1", { waitMs: 0, exclude: new Set(["tried"]) });
    expect(lease?.tunnel.tunnelId).toBe("sick");
  });

  it("makes a waiting request take the next stream an agent parks", async () => {
    const pool = new AgentPool();
    const entry = withParked(pool, tunnel("a", { capacity: 1 }), 0);
    const waiting = pool.acquire("c1", { waitMs: 1_000 });
    pool.park(entry.tunnelId, parkedStream());
    expect((await waiting)?.tunnel.tunnelId).toBe("a");
  });

  it("gives up after the wait, or at once when the caller leaves", async () => {
    const pool = new AgentPool();
    expect(await pool.acquire("c1", { waitMs: 20 })).toBeUndefined();
    const controller = new AbortController();
    const waiting = pool.acquire("c1", { waitMs: 10_000, signal: controller.signal });
    controller.abort();
    expect(await waiting).toBeUndefined();
  });

  it("forgets a parked stream that the agent cancels", async () => {
    const pool = new AgentPool();
    const entry = withParked(pool, tunnel("a"), 1);
    (entry.parked[0] as unknown as EventEmitter).emit("cancelled");
    expect(entry.parked).toHaveLength(0);
    expect(await pool.acquire("c1", { waitMs: 0 })).toBeUndefined();
  });
});
