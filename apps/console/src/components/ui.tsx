// Small building blocks every page uses.
import { type ReactNode, useState } from "react";
import type { Problem } from "../api/client";

export function PageTitle({ children, actions }: { children: ReactNode; actions?: ReactNode }) {
  return (
    <header className="page-title">
      <h1>{children}</h1>
      {actions ? <div className="actions">{actions}</div> : null}
    </header>
  );
}

/** A problem the API answered, with what to do about it. */
export function ProblemNote({ problem }: { problem: Problem | undefined }) {
  if (!problem) return null;
  return (
    <div className="problem" role="alert">
      <strong>{problem.code.replaceAll("_", " ")}</strong>: {problem.detail}
      {problem.errors?.length ? (
        <ul>
          {problem.errors.map((issue) => (
            <li key={issue.path}>
              <code>{issue.path}</code>: {issue.message}
            </li>
          ))}
        </ul>
      ) : null}
      {problem.requestId ? <div className="muted">request {problem.requestId}</div> : null}
    </div>
  );
}

export function Loading({ when }: { when: boolean }) {
  return when ? (
    <p className="muted" aria-live="polite">
      Loading…
    </p>
  ) : null;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A secret shown once, with a copy button. */
export function ShownOnce({ label, value, children }: { label: string; value: string; children?: ReactNode }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(value);
    setCopied(true);
  };
  return (
    <div className="shown-once" role="status">
      <p>
        <strong>{label}</strong> — shown once: copy it now; it cannot be shown again.
      </p>
      <div className="secret-row">
        <code data-testid="secret">{value}</code>
        <button type="button" onClick={() => void copy()}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      {children}
    </div>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span className="muted">—</span>;
  const date = new Date(iso);
  return (
    <time dateTime={iso} title={iso}>
      {date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" })}
    </time>
  );
}

const DECISION_TONE: Record<string, string> = {
  allowed: "ok",
  approved: "ok",
  masked: "info",
  approval_required: "warn",
  pending: "warn",
  blocked: "bad",
  denied: "bad",
  rate_limited: "bad",
  error: "bad",
  expired: "muted",
  // API keys' states.
  active: "ok",
  revoked: "bad",
  // Agents' tunnels.
  connected: "ok",
  draining: "warn",
  disconnected: "bad",
};

export function Badge({ value }: { value: string }) {
  return <span className={`badge ${DECISION_TONE[value] ?? ""}`}>{value.replaceAll("_", " ")}</span>;
}

/** Who made a request: the email where there is one, else the id. */
export function Subject({ subject }: { subject: { id: string; email?: string | null } | null }) {
  if (!subject) return <span className="muted">unidentified</span>;
  return <span title={subject.id}>{subject.email ?? subject.id}</span>;
}

/** A recorded body as people read it: JSON laid out, anything else as it is. */
export function readableBody(body: string | null | undefined): string {
  if (body === null || body === undefined) return "(not recorded)";
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
