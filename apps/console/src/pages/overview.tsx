import { useMemo, useState } from "react";
import { type Answer, allPages, api, call } from "../api/client";
import { TimeChart } from "../components/chart";
import { Empty, Loading, PageTitle, ProblemNote } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";
import { hasAnyRole, useSignedIn } from "../session";

type Stats = Answer<"getSessionStats">;
type Agents = Answer<"listAgents">["items"];

/** Live enough to watch a request land, light enough for the control plane. */
const REFRESH_MS = 5_000;

export function Overview() {
  const session = useSignedIn();
  const [window, setWindow] = useState<"hour" | "day">("hour");
  const stats = useApi(
    () => call<Stats>(api.GET("/api/v1/sessions/stats", { params: { query: { window } } })),
    window,
    REFRESH_MS,
  );
  const pending = useApi(
    () => call(api.GET("/api/v1/approvals", { params: { query: { status: "pending", limit: 500 } } })),
    "pending",
    REFRESH_MS,
  );
  const isAdmin = hasAnyRole(session, ["admin"]);
  const agents = useApi(() => (isAdmin ? allAgents() : Promise.resolve(undefined)), `agents-${isAdmin}`, REFRESH_MS);

  const chart = useMemo(() => {
    const buckets = stats.data?.buckets ?? [];
    return {
      times: buckets.map((bucket) => Date.parse(bucket.start) / 1000),
      traffic: [
        { label: "requests", values: buckets.map((bucket) => bucket.requests), stroke: "#2563eb" },
        { label: "refused", values: buckets.map((bucket) => bucket.refused), stroke: "#dc2626" },
        { label: "masked", values: buckets.map((bucket) => bucket.masked), stroke: "#9333ea" },
      ],
    };
  }, [stats.data]);

  const pendingCount = pending.data
    ? `${pending.data.items.length}${pending.data.nextCursor ? "+" : ""}`
    : pending.problem
      ? "?"
      : "…";

  return (
    <section>
      <PageTitle
        actions={
          <label>
            Window{" "}
            <select value={window} onChange={(event) => setWindow(event.target.value as "hour" | "day")}>
              <option value="hour">last hour</option>
              <option value="day">last day</option>
            </select>
          </label>
        }
      >
        Overview
      </PageTitle>
      <ProblemNote problem={stats.problem} />
      <div className="tiles">
        <Tile label="Requests" value={stats.data?.totals.requests} testId="tile-requests" />
        <Tile label="Refused" value={stats.data?.totals.refused} />
        <Tile label="Masked responses" value={stats.data?.totals.masked} />
        <Link to="/approvals" className="tile" data-testid="tile-pending">
          <span className="tile-value">{pendingCount}</span>
          <span className="tile-label">Pending approvals</span>
        </Link>
      </div>
      <Loading when={!stats.data && stats.loading} />
      {stats.data ? (
        <div className="charts">
          <TimeChart
            title={`Requests per ${bucketName(stats.data.bucketSeconds)}`}
            times={chart.times}
            series={chart.traffic}
          />
          <div className="panel">
            <h2>Refusals by reason</h2>
            {stats.data.refusalsByReason.length === 0 ? (
              <Empty>No refusals in this window.</Empty>
            ) : (
              <table>
                <tbody>
                  {stats.data.refusalsByReason.map((row) => (
                    <tr key={row.reason}>
                      <td>{row.reason}</td>
                      <td className="number">{row.count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </div>
      ) : null}
      {isAdmin ? <AgentsByConnection agents={agents.data} /> : null}
    </section>
  );
}

function bucketName(seconds: number): string {
  if (seconds === 60) return "minute";
  if (seconds === 3600) return "hour";
  return `${Math.round(seconds / 60)} minutes`;
}

function Tile({ label, value, testId }: { label: string; value: number | undefined; testId?: string }) {
  return (
    <div className="tile" data-testid={testId}>
      <span className="tile-value">{value ?? "…"}</span>
      <span className="tile-label">{label}</span>
    </div>
  );
}

/** Bounded: an overview does not page through thousands of agents. */
const allAgents = (): Promise<Agents> =>
  allPages(
    (cursor) => call(api.GET("/api/v1/agents", { params: { query: { limit: 500, ...(cursor ? { cursor } : {}) } } })),
    10,
  );

function AgentsByConnection({ agents }: { agents: Agents | undefined }) {
  if (!agents) return null;
  const byConnection = new Map<string, { up: number; down: number }>();
  for (const agent of agents) {
    if (agent.status !== "active") continue;
    const counts = byConnection.get(agent.connection) ?? { up: 0, down: 0 };
    if (agent.tunnel.state === "connected") counts.up++;
    else counts.down++;
    byConnection.set(agent.connection, counts);
  }
  return (
    <div className="panel">
      <h2>Agents per connection</h2>
      {byConnection.size === 0 ? (
        <Empty>
          No agents yet. <Link to="/connections">Register a connection and issue an agent token.</Link>
        </Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Connection</th>
              <th className="number">Up</th>
              <th className="number">Down</th>
            </tr>
          </thead>
          <tbody>
            {[...byConnection].map(([connection, counts]) => (
              <tr key={connection}>
                <td>{connection}</td>
                <td className="number">{counts.up}</td>
                <td className={`number ${counts.down > 0 ? "bad-text" : ""}`}>{counts.down}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
