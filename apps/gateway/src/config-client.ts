// Keeps the gateway's configuration current: a Subscribe stream to the
// control plane delivers a snapshot or the deltas since what the gateway
// holds, then a delta per published change; the gateway reports its agents
// on the same stream. A delta that does not fit what the store holds (a
// missing revision, another history) makes the gateway ask for a snapshot.
// When the control plane is unreachable the gateway keeps serving with its
// last-known configuration and reconnects with backoff, saying what it holds.
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { createBackoff, type Logger } from "@modelgate/core";
import {
  type AgentPresenceInput,
  type ApprovalRequestInput,
  type ApprovalTicket,
  type ConfigUpdate,
  type ConsumeApprovalRequestInput,
  type GatewayConfigClient,
  type GatewayReportInput,
  KEEPALIVE_OPTIONS,
  loadConfigProto,
} from "@modelgate/protocol";
import type { ConfigStore } from "./config-store.js";
import type { QuotaThreshold } from "./quota.js";

export interface ConfigClientOptions {
  address: string;
  credentials: grpc.ChannelCredentials;
  token: string;
  gatewayId: string;
  version: string;
  publicUrl: string;
  store: ConfigStore;
  logger: Logger;
  /** The agents to report, read whenever a report is due. */
  agents: () => AgentPresenceInput[];
}

/** Largest configuration snapshot a gateway accepts (about 1.5 million keys). */
const MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024;

/** Emits "connected" and "disconnected". */
export class ConfigClient extends EventEmitter {
  #options: ConfigClientOptions;
  #client: GatewayConfigClient;
  #call: grpc.ClientDuplexStream<GatewayReportInput, ConfigUpdate> | undefined;
  #connected = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;
  #reportScheduled = false;
  #backoff = createBackoff({ initialMs: 200, maxMs: 10_000 });

  constructor(options: ConfigClientOptions) {
    super();
    this.#options = options;
    const { GatewayConfig } = loadConfigProto().modelgate.config.v1;
    this.#client = new GatewayConfig(options.address, options.credentials, {
      ...KEEPALIVE_OPTIONS,
      // A snapshot holds every key and policy: about 150 bytes per key, so
      // gRPC's default 4 MiB would stop config (revocations included) at
      // roughly 30,000 keys.
      "grpc.max_receive_message_length": MAX_SNAPSHOT_BYTES,
    });
  }

  /** Whether a stream to the control plane is open and has brought the configuration up to date. */
  get connected(): boolean {
    return this.#connected;
  }

  start(): void {
    this.#open();
  }

  /** Sends the agent report soon, coalescing bursts of changes into one message. */
  reportAgents(): void {
    if (this.#reportScheduled || !this.#call) return;
    this.#reportScheduled = true;
    setImmediate(() => {
      this.#reportScheduled = false;
      this.#call?.write({ agents: { agents: this.#options.agents() } });
    });
  }

  /**
   * Opens an approval for a held request, or finds the pending one of an
   * identical request (docs/approvals.md). Rejects when the control plane
   * cannot be reached in `timeoutMs`: the caller fails closed.
   */
  requestApproval(request: ApprovalRequestInput, timeoutMs: number): Promise<ApprovalTicket> {
    return new Promise((resolve, reject) => {
      this.#client.requestApproval(request, this.#metadata(), { deadline: Date.now() + timeoutMs }, (error, ticket) =>
        error || !ticket ? reject(error ?? new Error("no approval ticket")) : resolve(ticket),
      );
    });
  }

  /** Uses a grant for one request; true for exactly one request per `request` grant across every gateway. */
  consumeApproval(request: ConsumeApprovalRequestInput, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#client.consumeApproval(request, this.#metadata(), { deadline: Date.now() + timeoutMs }, (error, result) =>
        error || !result ? reject(error ?? new Error("no answer")) : resolve(result.granted),
      );
    });
  }

  /** Reports a quota threshold crossing; the control plane raises the alert once however often it hears of it. */
  reportQuotaThreshold(crossing: QuotaThreshold, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#client.reportQuotaThreshold(crossing, this.#metadata(), { deadline: Date.now() + timeoutMs }, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  }

  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.#options.token}`);
    return metadata;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#call?.cancel();
    this.#client.close();
  }

  #open(): void {
    if (this.#closed) return;
    const call = this.#client.subscribe(this.#metadata());
    this.#call = call;
    const { store } = this.#options;
    call.write({
      hello: {
        gatewayId: this.#options.gatewayId,
        version: this.#options.version,
        publicUrl: this.#options.publicUrl,
        // What the store holds, so a reconnect costs the deltas since then.
        epoch: store.epoch,
        revision: store.loaded ? store.revision : 0,
      },
    });
    // Deltas that arrive after asking for a snapshot are built on what the
    // store does not hold either; they are ignored until the snapshot comes.
    let awaitingSnapshot = false;
    call.on("data", (update: ConfigUpdate) => {
      if (update.snapshot) {
        if (store.applySnapshot(update.snapshot) === "stale") {
          this.#options.logger.warn(
            { held: store.revision, snapshot: update.snapshot.revision },
            "configuration snapshot is older than what this gateway holds; kept what it holds",
          );
        }
        awaitingSnapshot = false;
      } else if (update.delta && !awaitingSnapshot) {
        const outcome = store.applyDelta(update.delta);
        if (outcome === "gap" || outcome === "epoch_mismatch") {
          awaitingSnapshot = true;
          this.#options.logger.warn(
            { held: store.revision, base: update.delta.baseRevision, revision: update.delta.revision, outcome },
            "configuration delta does not fit what this gateway holds; asking for a snapshot",
          );
          call.write({
            snapshotRequest: {
              revision: store.loaded ? store.revision : 0,
              reason: outcome === "gap" ? "SNAPSHOT_REASON_GAP" : "SNAPSHOT_REASON_EPOCH_MISMATCH",
            },
          });
          return;
        }
      } else {
        return;
      }
      if (!this.#connected) {
        this.#connected = true;
        this.#backoff.reset();
        this.#options.logger.info({ revision: store.revision, kind: update.kind }, "configuration stream connected");
        this.emit("connected");
        this.reportAgents();
      }
    });
    let ended = false;
    const onEnd = (status: grpc.StatusObject) => {
      if (ended) return;
      ended = true;
      this.#call = undefined;
      const wasConnected = this.#connected;
      this.#connected = false;
      if (wasConnected) this.emit("disconnected");
      if (this.#closed) return;
      const delay = this.#backoff.next();
      const log = status.code === grpc.status.UNAUTHENTICATED ? "error" : "warn";
      this.#options.logger[log](
        { code: grpc.status[status.code], details: status.details, retryInMs: delay },
        "configuration stream closed; serving the last-known configuration",
      );
      this.#retry = setTimeout(() => this.#open(), delay);
      this.#retry.unref();
    };
    call.on("error", onEnd);
    call.on("status", (status: grpc.StatusObject) => onEnd(status));
  }
}
