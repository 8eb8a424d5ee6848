import { useState } from "react";
import { type Answer, api, call } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, Subject, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";

type Status = "pending" | "approved" | "denied" | "expired";
type Page = Answer<"listApprovals">;

/** A pending prompt waits for a person: the inbox looks again every few seconds. */
const REFRESH_MS = 3_000;

export function Approvals() {
  const [status, setStatus] = useState<Status | "all">("pending");
  const [cursor, setCursor] = useState<string>();
  const list = useApi(
    () =>
      call<Page>(
        api.GET("/api/v1/approvals", {
          params: { query: { limit: 50, ...(status === "all" ? {} : { status }), ...(cursor ? { cursor } : {}) } },
        }),
      ),
    `${status}:${cursor ?? ""}`,
    // Only the first page is live: later pages would shift under the reader.
    cursor ? undefined : REFRESH_MS,
  );

  return (
    <section>
      <PageTitle
        actions={
          <label>
            Show{" "}
            <select
              value={status}
              onChange={(event) => {
                setStatus(event.target.value as Status | "all");
                setCursor(undefined);
              }}
            >
              <option value="pending">pending</option>
              <option value="approved">approved</option>
              <option value="denied">denied</option>
              <option value="expired">expired</option>
              <option value="all">all</option>
            </select>
          </label>
        }
      >
        Approvals
      </PageTitle>
      <ProblemNote problem={list.problem} />
      <Loading when={!list.data && list.loading} />
      {list.data && list.data.items.length === 0 ? (
        <Empty>{status === "pending" ? "Nothing waits for a decision." : "No approvals match."}</Empty>
      ) : null}
      {list.data && list.data.items.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="approvals">
            <thead>
              <tr>
                <th>Requested</th>
                <th>Who</th>
                <th>Connection / model</th>
                <th>Rule</th>
                <th>Status</th>
                <th>Expires</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((approval) => (
                <tr key={approval.id}>
                  <td>
                    <Link to={`/approvals/${approval.id}`}>
                      <Time iso={approval.requestedAt} />
                    </Link>
                  </td>
                  <td>
                    <Subject subject={approval.subject} />
                  </td>
                  <td>
                    {approval.connection} / {approval.model}
                  </td>
                  <td>
                    {approval.policy.name}
                    <div className="muted">{approval.reason}</div>
                  </td>
                  <td>
                    <Badge value={approval.status} />
                  </td>
                  <td>
                    <Time iso={approval.status === "pending" ? approval.expiresAt : approval.decidedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {list.data?.nextCursor ? (
        <button type="button" onClick={() => setCursor(list.data?.nextCursor ?? undefined)}>
          Older
        </button>
      ) : null}
      {cursor ? (
        <button type="button" onClick={() => setCursor(undefined)}>
          Back to the newest
        </button>
      ) : null}
    </section>
  );
}
