import { useState } from "react";
import { type Answer, api, call, type Problem, problemOf } from "../api/client";
import { ProblemNote } from "./ui";

type Report = Answer<"verifyAuditChain">;

/** Sessions checked per call: each part is one bounded request; the page shows progress between them. */
const PART = 5_000;

type State =
  | { status: "idle" }
  | { status: "running"; checked: number; head: number | undefined }
  | { status: "ok"; checked: number; headHash: string | null }
  | { status: "broken"; report: Extract<Report, { status: "broken" }>; checked: number }
  | { status: "failed"; problem: Problem };

/**
 * Recomputes the whole audit hash chain, in parts, as `modelgate audit
 * verify` does: each part starts where the last ended, with the hash it
 * ended on, so the walk is one chain however it is cut.
 */
export function ChainVerifier() {
  const [state, setState] = useState<State>({ status: "idle" });

  const verify = async () => {
    let checked = 0;
    let from: number | undefined;
    let prevHash: string | undefined;
    setState({ status: "running", checked, head: undefined });
    try {
      for (;;) {
        const query = {
          limit: PART,
          ...(from === undefined ? {} : { from: String(from) }),
          ...(prevHash ? { prevHash } : {}),
        };
        const report = await call<Report>(api.GET("/api/v1/audit/verify", { params: { query } }));
        checked += report.checked;
        if (report.status === "broken") {
          setState({ status: "broken", report, checked });
          return;
        }
        if (report.complete) {
          setState({ status: "ok", checked, headHash: report.headHash });
          return;
        }
        setState({ status: "running", checked, head: report.headChainSeq });
        from = report.lastChainSeq + 1;
        prevHash = report.headHash ?? undefined;
      }
    } catch (error) {
      setState({ status: "failed", problem: problemOf(error) });
    }
  };

  return (
    <div className="verifier" data-testid="chain-verifier">
      <button type="button" disabled={state.status === "running"} onClick={() => void verify()}>
        Verify the audit chain now
      </button>
      {state.status === "running" ? (
        <span aria-live="polite">
          {state.head ? <progress max={state.head} value={state.checked} /> : null} {state.checked} checked…
        </span>
      ) : null}
      {state.status === "ok" ? (
        <span className="badge ok" role="status">
          chain intact: {state.checked} sessions verified
        </span>
      ) : null}
      {state.status === "broken" ? (
        <span className="badge bad" role="status">
          chain broken at sequence {state.report.firstBrokenAt.chainSeq} ({state.report.firstBrokenAt.reason}
          {state.report.firstBrokenAt.sessionId ? `, session ${state.report.firstBrokenAt.sessionId}` : ""}):{" "}
          {state.report.firstBrokenAt.detail}
        </span>
      ) : null}
      {state.status === "failed" ? <ProblemNote problem={state.problem} /> : null}
    </div>
  );
}
