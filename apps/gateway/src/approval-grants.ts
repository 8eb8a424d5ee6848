// The approvals this gateway knows of, as the control plane pushes them on
// the configuration stream (docs/approvals.md): the grants in force, looked
// up on the request path without a round trip, and the decisions that
// release requests waiting on an approval (`Prefer: wait`). Pending
// approvals are never pushed; a waiter learns of its approval's fate from
// the delta that decides, expires or voids it.
import type { ApprovalMessage } from "@modelgate/protocol";

/** What grants are matched on: exactly the subject, connection, model, operation, policy and rule the approval was for. */
export interface GrantScope {
  subjectKey: string;
  connection: string;
  model: string;
  operation: string;
  policyId: string;
  /** The prompt rule's position; -1 when the grant itself needs approval. */
  rule: number;
}

/** How a wait on an approval ended. */
export type WaitOutcome =
  | { kind: "decided"; approval: ApprovalMessage }
  | { kind: "timeout" }
  | { kind: "client_gone" }
  /** The gateway is shutting down: the caller is answered now and may send again to another replica. */
  | { kind: "shutdown" };

/** One string per scope, for maps. */
export const scopeKeyOf = (scope: GrantScope) =>
  [scope.subjectKey, scope.connection, scope.model, scope.operation, scope.policyId, String(scope.rule)].join("\u0000");

/** Whether a pushed approval admits requests of this scope at `now` (the body is checked by the caller). */
export function grantCovers(approval: ApprovalMessage, scope: GrantScope, now: number): boolean {
  return (
    approval.status === "approved" &&
    approval.inForce &&
    approval.grantExpiresAt > now &&
    approval.subjectKey === scope.subjectKey &&
    approval.connection === scope.connection &&
    approval.model === scope.model &&
    approval.operation === scope.operation &&
    approval.policyId === scope.policyId &&
    approval.rule === scope.rule
  );
}

export class ApprovalGrants {
  /** Grants in force by id. */
  #byId = new Map<string, ApprovalMessage>();
  /** scope → ids of grants in force for it (a subject may hold a window grant and several request grants). */
  #byScope = new Map<string, Set<string>>();
  readonly #waiters = new Map<string, Set<(outcome: WaitOutcome) => void>>();
  readonly #decidedListeners = new Set<(approvalId: string) => void>();
  #closed = false;

  /** Called with the id of every approval a delta says is no longer pending (decided, expired, used, voided). */
  onDecided(listener: (approvalId: string) => void): void {
    this.#decidedListeners.add(listener);
  }

  /** Replaces every grant (a snapshot carries the grants in force, and only those). */
  replace(approvals: readonly ApprovalMessage[]): void {
    this.#byId = new Map();
    this.#byScope = new Map();
    this.update(approvals);
  }

  /** Applies approvals a delta carries in their current state, and wakes the requests waiting on them. */
  update(approvals: readonly ApprovalMessage[]): void {
    for (const approval of approvals) {
      this.#remove(approval.id);
      if (approval.status === "approved" && approval.inForce) this.#add(approval);
      if (approval.status === "pending") continue;
      for (const listener of this.#decidedListeners) listener(approval.id);
      this.#settle(approval.id, { kind: "decided", approval });
    }
  }

  /**
   * A grant in force for this scope that admits a request with this body:
   * a window grant whatever the body, a request grant only for its body.
   * Request grants first: using one spends an approval made for exactly
   * this request rather than none.
   */
  find(scope: GrantScope, bodySha256: string, now = Date.now()): ApprovalMessage | undefined {
    const ids = this.#byScope.get(scopeKeyOf(scope));
    if (!ids) return undefined;
    let window: ApprovalMessage | undefined;
    for (const id of [...ids]) {
      const approval = this.#byId.get(id);
      if (!approval) continue;
      // A grant past its end gets no delta (nothing changed at the control plane): dropped when met.
      if (approval.grantExpiresAt <= now) {
        this.#remove(id);
        continue;
      }
      if (!grantCovers(approval, scope, now)) continue;
      if (approval.grant === "request" && approval.bodySha256 === bodySha256) return approval;
      if (approval.grant === "window") window ??= approval;
    }
    return window;
  }

  /** Grants held now (for readiness and tests). */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Resolves when the approval is decided (approved, denied, expired), the
   * time is up, the client goes away or the gateway shuts down, whichever
   * comes first.
   */
  wait(approvalId: string, timeoutMs: number, clientGone: AbortSignal): Promise<WaitOutcome> {
    if (this.#closed) return Promise.resolve({ kind: "shutdown" });
    if (clientGone.aborted) return Promise.resolve({ kind: "client_gone" });
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(approvalId);
      if (!waiters) {
        waiters = new Set();
        this.#waiters.set(approvalId, waiters);
      }
      const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
      const onGone = () => finish({ kind: "client_gone" });
      clientGone.addEventListener("abort", onGone, { once: true });
      const finish = (outcome: WaitOutcome) => {
        clearTimeout(timer);
        clientGone.removeEventListener("abort", onGone);
        const set = this.#waiters.get(approvalId);
        set?.delete(finish);
        if (set?.size === 0) this.#waiters.delete(approvalId);
        resolve(outcome);
      };
      waiters.add(finish);
    });
  }

  /** Requests waiting on approvals now. */
  get waiting(): number {
    let count = 0;
    for (const waiters of this.#waiters.values()) count += waiters.size;
    return count;
  }

  /** Releases every waiter (the gateway is shutting down) and refuses new waits. */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#waiters.keys()]) this.#settle(id, { kind: "shutdown" });
  }

  #add(approval: ApprovalMessage): void {
    this.#byId.set(approval.id, approval);
    const key = scopeKeyOf(approval);
    let ids = this.#byScope.get(key);
    if (!ids) {
      ids = new Set();
      this.#byScope.set(key, ids);
    }
    ids.add(approval.id);
  }

  #remove(id: string): void {
    const previous = this.#byId.get(id);
    if (!previous) return;
    this.#byId.delete(id);
    const key = scopeKeyOf(previous);
    const ids = this.#byScope.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.#byScope.delete(key);
  }

  #settle(id: string, outcome: WaitOutcome): void {
    const waiters = this.#waiters.get(id);
    if (!waiters) return;
    for (const finish of [...waiters]) finish(outcome);
  }
}
