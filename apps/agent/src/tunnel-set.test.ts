import { EventEmitter } from "node:events";
import { createLogger } from "@modelgate/core";
import { type GatewayEndpoint, MAX_REPLICAS_PER_NAME, type ManagedTunnel, TunnelSet } from "./tunnel-set.js";

/** A tunnel that only records that it was opened: the set's bookkeeping is what is tested. */
class RecordingTunnel extends EventEmitter implements ManagedTunnel {
  readonly quiet = true;
  readonly address: string;
  started = false;
  constructor(address: string) {
    super();
    this.address = address;
  }
  start() {
    this.started = true;
  }
  drain() {
    this.emit("idle");
  }
  close() {}
}

describe("TunnelSet", () => {
  it("keeps tunnels to at most MAX_REPLICAS_PER_NAME addresses of one DNS name, the same ones every time", async () => {
    const addresses = Array.from({ length: 5_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const opened: GatewayEndpoint[] = [];
    const set = new TunnelSet({
      targets: [{ kind: "dns", host: "gateway-tunnel.test", port: 8443, tls: true }],
      createTunnel: (endpoint) => {
        opened.push(endpoint);
        return new RecordingTunnel(endpoint.address);
      },
      // Shuffled differently on each lookup, as round-robin DNS answers are.
      resolve: async () => [...addresses].sort(() => Math.random() - 0.5),
      retireTimeoutMs: 1_000,
      logger: createLogger({ name: "test", level: "silent" }),
    });
    await set.start();
    expect(set.live()).toHaveLength(MAX_REPLICAS_PER_NAME);
    await set.refresh();
    // A reshuffled answer opens no new tunnel and retires none.
    expect(opened).toHaveLength(MAX_REPLICAS_PER_NAME);
    expect(opened.every((endpoint) => endpoint.serverName === "gateway-tunnel.test")).toBe(true);
    set.close();
  });
});
