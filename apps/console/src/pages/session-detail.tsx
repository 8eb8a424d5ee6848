import { type Answer, api, call, callJson } from "../api/client";
import { ChainVerifier } from "../components/chain-verifier";
import { ReplayPlayer } from "../components/replay-player";
import { Badge, Loading, PageTitle, ProblemNote, readableBody, Subject, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";

type Session = Answer<"getSession">;
type Replay = Answer<"replaySession">;

export function SessionDetail({ id }: { id: string }) {
  const session = useApi(() => call<Session>(api.GET("/api/v1/sessions/{id}", { params: { path: { id } } })), id);
  const replay = useApi(
    () =>
      callJson<Replay>(
        api.GET("/api/v1/sessions/{id}/replay", { params: { path: { id }, query: { format: "json" } } }),
      ),
    id,
  );
  const data = session.data;
  const masked = maskedCounts(data?.details);

  return (
    <section>
      <PageTitle>
        <Link to="/sessions">Sessions</Link> / <code>{id}</code>
      </PageTitle>
      <ProblemNote problem={session.problem} />
      <Loading when={!data && session.loading} />
      {data ? (
        <>
          <dl className="facts">
            <dt>Decision</dt>
            <dd>
              <Badge value={data.decision} /> {data.reason ? <span className="muted">{data.reason}</span> : null}
            </dd>
            <dt>Who</dt>
            <dd>
              <Subject subject={data.subject} />{" "}
              {data.subject ? (
                <span className="muted">
                  {data.subject.authMethod ?? ""} · {data.subject.groups.join(", ") || "no groups"}
                </span>
              ) : null}
            </dd>
            <dt>Request</dt>
            <dd>
              <code>
                {data.method} {data.endpoint}
              </code>{" "}
              to {data.connection ?? "—"} / {data.model ?? "—"}
            </dd>
            <dt>Received</dt>
            <dd>
              <Time iso={data.receivedAt} />
            </dd>
            <dt>Status · first byte · total</dt>
            <dd>
              {data.responseStatus ?? "—"} · {data.ttfbMs ?? "—"} ms · {data.latencyMs ?? "—"} ms
            </dd>
            <dt>Masked</dt>
            <dd data-testid="masked-counts">
              {masked.length === 0
                ? "nothing"
                : masked.map(([kind, count]) => (
                    <span key={kind} className="badge info">
                      {kind}: {count}
                    </span>
                  ))}
            </dd>
            <dt>Policies</dt>
            <dd>{data.policyIds.length ? data.policyIds.join(", ") : "none"}</dd>
            <dt>Audit chain</dt>
            <dd>
              {data.hash ? (
                <>
                  linked: <code title={data.hash}>{data.hash.slice(0, 16)}…</code> after{" "}
                  <code title={data.prevHash ?? ""}>{data.prevHash?.slice(0, 16) ?? "genesis"}…</code>
                </>
              ) : (
                <span className="muted">not linked yet (the worker chains sessions as it stores them)</span>
              )}
              <ChainVerifier />
            </dd>
          </dl>
          <h2>Request</h2>
          <pre className="body">{readableBody(data.content?.requestBody)}</pre>
          <h2>Response</h2>
          <ProblemNote problem={replay.problem} />
          {replay.data?.response.streamed && replay.data.events.length > 0 ? (
            <ReplayPlayer events={replay.data.events} firstOffsetMs={0} />
          ) : (
            <pre className="body" data-testid="response-body">
              {readableBody(replay.data?.response.body ?? data.content?.responseBody)}
            </pre>
          )}
          {data.content?.truncated ? <p className="muted">A body was cut at the gateway's recording cap.</p> : null}
        </>
      ) : null}
    </section>
  );
}

/** The masking counts by kind (email, card, …) the gateway recorded, largest first. */
function maskedCounts(details: Record<string, unknown> | null | undefined): [string, number][] {
  const counts = details?.maskedCounts;
  if (!counts || typeof counts !== "object") return [];
  return Object.entries(counts as Record<string, unknown>)
    .filter((entry): entry is [string, number] => typeof entry[1] === "number" && entry[1] > 0)
    .sort((a, b) => b[1] - a[1]);
}
