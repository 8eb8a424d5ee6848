import { useState } from "react";
import { type Answer, api, call, type Problem, problemOf } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, readableBody, Subject, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";
import { type ConsoleSession, useSignedIn } from "../session";

/**
 * Whether the API will take this person's vote: a person (the admin token
 * never decides) with the approver role or in one of the approval's groups,
 * who is not the requester. The API checks the same; this only spares a
 * button that would be refused.
 */
function whyNotDecide(session: ConsoleSession, approval: Approval): string | undefined {
  const { principal } = session;
  if (principal.kind !== "oidc") return "The admin token reads approvals but never decides them: sign in as a person.";
  if (approval.subject.id === principal.id) return "You asked for this: someone else must decide.";
  const inGroup = approval.approverGroups.some((group) => principal.groups.includes(group));
  if (!principal.roles.includes("approver") && !inGroup) {
    return `Deciding needs the approver role or one of the groups ${approval.approverGroups.join(", ") || "(none)"}.`;
  }
  return undefined;
}

type Approval = Answer<"getApproval">;

export function ApprovalDetail({ id }: { id: string }) {
  const session = useSignedIn();
  const approval = useApi(
    () => call<Approval>(api.GET("/api/v1/approvals/{id}", { params: { path: { id } } })),
    id,
    3_000,
  );
  const [comment, setComment] = useState("");
  const [problem, setProblem] = useState<Problem>();
  const [busy, setBusy] = useState(false);

  const decide = async (decision: "approve" | "deny") => {
    setBusy(true);
    setProblem(undefined);
    try {
      const body = comment.trim() ? { comment: comment.trim() } : {};
      const params = { params: { path: { id } }, body };
      await call(
        decision === "approve"
          ? api.POST("/api/v1/approvals/{id}/approve", params)
          : api.POST("/api/v1/approvals/{id}/deny", params),
      );
      setComment("");
      approval.reload();
    } catch (error) {
      setProblem(problemOf(error));
    } finally {
      setBusy(false);
    }
  };

  const data = approval.data;
  const cannotDecide = data ? whyNotDecide(session, data) : undefined;
  return (
    <section>
      <PageTitle>
        <Link to="/approvals">Approvals</Link> / request
      </PageTitle>
      <ProblemNote problem={approval.problem} />
      <Loading when={!data && approval.loading} />
      {data ? (
        <>
          <dl className="facts">
            <dt>Status</dt>
            <dd>
              <Badge value={data.status} />
            </dd>
            <dt>Requested by</dt>
            <dd>
              <Subject subject={data.subject} />{" "}
              <span className="muted">({data.subject.groups.join(", ") || "no groups"})</span>
            </dd>
            <dt>Connection / model</dt>
            <dd>
              {data.connection} / {data.model} <span className="muted">({data.operation})</span>
            </dd>
            <dt>Rule that fired</dt>
            <dd>
              policy <strong>{data.policy.name}</strong>,{" "}
              {data.rule === null ? "the grant itself" : `prompt rule ${data.rule}`} in <code>{data.field}</code>:{" "}
              {data.reason}
            </dd>
            <dt>Needs</dt>
            <dd>
              {data.minApprovals} approval{data.minApprovals === 1 ? "" : "s"} from{" "}
              {data.approverGroups.join(", ") || "approvers"}
            </dd>
            <dt>Requested</dt>
            <dd>
              <Time iso={data.requestedAt} />
            </dd>
            <dt>{data.status === "pending" ? "Expires" : "Decided"}</dt>
            <dd>
              <Time iso={data.status === "pending" ? data.expiresAt : data.decidedAt} />
            </dd>
          </dl>
          <h2>Prompt</h2>
          <pre className="prompt" data-testid="prompt">
            {readableBody(data.prompt)}
          </pre>
          {data.promptTruncated ? <p className="muted">The prompt is longer than the record keeps.</p> : null}
          {data.votes.length > 0 ? (
            <>
              <h2>Votes</h2>
              <ul>
                {data.votes.map((vote) => (
                  <li key={`${vote.approverId}-${vote.at}`}>
                    <Badge value={vote.decision === "approve" ? "approved" : "denied"} />{" "}
                    {vote.email ?? vote.approverId} <Time iso={vote.at} />
                    {vote.comment ? <q>{vote.comment}</q> : null}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {data.status === "pending" && cannotDecide ? <p className="notice">{cannotDecide}</p> : null}
          {data.status === "pending" && !cannotDecide ? (
            <form className="decide" onSubmit={(event) => event.preventDefault()}>
              <label htmlFor="comment">Comment (shown to the caller on a denial)</label>
              <textarea
                id="comment"
                maxLength={1024}
                value={comment}
                onChange={(event) => setComment(event.target.value)}
              />
              <div className="actions">
                <button type="button" className="primary" disabled={busy} onClick={() => void decide("approve")}>
                  Approve
                </button>
                <button type="button" className="danger" disabled={busy} onClick={() => void decide("deny")}>
                  Deny
                </button>
              </div>
              <ProblemNote problem={problem} />
            </form>
          ) : null}
          <History subjectId={data.subject.id} current={data.id} />
        </>
      ) : null}
    </section>
  );
}

/** The requester's other approvals: what they asked before, and how it went. */
function History({ subjectId, current }: { subjectId: string; current: string }) {
  const history = useApi(
    () => call(api.GET("/api/v1/approvals", { params: { query: { subject: subjectId, limit: 20 } } })),
    subjectId,
  );
  const others = history.data?.items.filter((item) => item.id !== current) ?? [];
  return (
    <>
      <h2>The requester's history</h2>
      <ProblemNote problem={history.problem} />
      {history.data && others.length === 0 ? <Empty>No earlier approvals.</Empty> : null}
      {others.length > 0 ? (
        <table>
          <tbody>
            {others.map((item) => (
              <tr key={item.id}>
                <td>
                  <Link to={`/approvals/${item.id}`}>
                    <Time iso={item.requestedAt} />
                  </Link>
                </td>
                <td>
                  {item.connection} / {item.model}
                </td>
                <td>{item.reason}</td>
                <td>
                  <Badge value={item.status} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}
