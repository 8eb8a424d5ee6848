// One Exchange stream an agent opened: a slot that carries one request at a
// time and is reused for the next, so a request costs messages on an open
// HTTP/2 stream rather than a new gRPC call (about 1 ms of CPU less, measured).
import * as grpc from "@grpc/grpc-js";
import type { AgentFrame, GatewayFrameInput } from "@modelgate/protocol";

export type ExchangeCall = grpc.ServerDuplexStream<AgentFrame, GatewayFrameInput>;

/** Who is using the slot right now. */
export interface SlotHandler {
  onFrame(frame: AgentFrame): void;
  /** The stream closed (agent gone, tunnel closed) while this handler held it. */
  onClosed(): void;
}

export class Slot {
  readonly call: ExchangeCall;
  handler: SlotHandler | undefined;
  #closed = false;

  constructor(call: ExchangeCall, onClosed: (slot: Slot) => void) {
    this.call = call;
    call.on("data", (frame: AgentFrame) => this.handler?.onFrame(frame));
    const close = () => {
      if (this.#closed) return;
      this.#closed = true;
      onClosed(this);
      this.handler?.onClosed();
    };
    call.on("error", close);
    call.on("cancelled", close);
    call.on("close", close);
    // The agent half-closed: it will send nothing more on this stream.
    call.on("end", () => {
      close();
      if (!call.writableEnded) call.end();
    });
  }

  get closed(): boolean {
    return this.#closed || this.call.cancelled || this.call.destroyed;
  }

  /** Ends the stream; the agent aborts whatever runs on it. */
  destroy(code: grpc.status, details: string): void {
    if (this.#closed) return;
    this.call.emit("error", { code, details } as Partial<grpc.StatusObject> as Error);
  }

  cancel(reason: string): void {
    this.destroy(grpc.status.CANCELLED, reason);
  }
}
