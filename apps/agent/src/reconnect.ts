// When a tunnel tries its gateway again after losing it (or never reaching
// it). Three schedules, one per kind of failure, each core's backoff
// (exponential, full jitter), so agents that lost the same gateway never
// return in lockstep:
//
// - absent: nothing answered, or the gateway said UNAVAILABLE (it is
//   shutting down, or starting and still without configuration). Asking an
//   absent gateway costs it nothing (the kernel refuses the connection), so
//   the wait stays short, at most 1 s: an agent is back within about a
//   second of its gateway's return, and the returning agents arrive spread
//   over that second rather than all at once.
// - failed: the gateway answered and the registration failed otherwise
//   (too many tunnels for the token, a malformed exchange, a stream that
//   broke). Backs off up to `maxMs` (default 5 s), to spare a gateway that
//   is up but unwell.
// - refused: the gateway does not accept the token (UNAUTHENTICATED,
//   PERMISSION_DENIED). It is retried, slowly, up to `refusedMaxMs`
//   (default 60 s): a token can be re-issued, or a new agent's token may
//   not have reached every gateway yet.
//
// A registration that succeeds resets all three.
import * as grpc from "@grpc/grpc-js";
import { createBackoff } from "@modelgate/core";

export interface ReconnectSettings {
  /** First wait after a failure (default 200 ms). */
  initialMs: number;
  /** Longest wait after a failed registration with a gateway that answered (default 5 s). */
  maxMs: number;
  /** Longest wait while the gateway refuses the token (default 60 s). */
  refusedMaxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectSettings = { initialMs: 200, maxMs: 5_000, refusedMaxMs: 60_000 };

/** Longest wait while a gateway is absent: the bound on how long after its return an agent is back. */
export const ABSENT_MAX_MS = 1_000;

export type FailureKind = "absent" | "failed" | "refused";

export function failureKind(code: grpc.status): FailureKind {
  if (code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED) return "refused";
  if (code === grpc.status.UNAVAILABLE) return "absent";
  return "failed";
}

export interface ReconnectSchedule {
  /** The wait before the next attempt after a failure with this status code. */
  next(code: grpc.status): { kind: FailureKind; delayMs: number };
  /** A registration succeeded: every schedule starts small again. */
  reset(): void;
}

export function createReconnectSchedule(
  settings: Partial<ReconnectSettings> = {},
  random: () => number = Math.random,
): ReconnectSchedule {
  const { initialMs, maxMs, refusedMaxMs } = { ...DEFAULT_RECONNECT, ...settings };
  const backoffs = {
    absent: createBackoff({ initialMs, maxMs: Math.min(ABSENT_MAX_MS, maxMs), random }),
    failed: createBackoff({ initialMs, maxMs, random }),
    // Starts at a second: a refused token is not a blip.
    refused: createBackoff({ initialMs: Math.min(1_000, refusedMaxMs), maxMs: refusedMaxMs, random }),
  };
  return {
    next(code) {
      const kind = failureKind(code);
      return { kind, delayMs: backoffs[kind].next() };
    },
    reset() {
      for (const backoff of Object.values(backoffs)) backoff.reset();
    },
  };
}
