import { useState } from "react";
import { api, call } from "../api/client";
import { Empty, Loading, PageTitle, ProblemNote, Time } from "../components/ui";
import { useApi } from "../components/use-api";

/** Every change made through the admin API: who, what, before and after. */
export function AdminAuditLog() {
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const log = useApi(
    () => call(api.GET("/api/v1/admin-audit-log", { params: { query: { limit: 50, ...(cursor ? { cursor } : {}) } } })),
    cursor ?? "",
  );
  return (
    <section>
      <PageTitle>Admin audit log</PageTitle>
      <ProblemNote problem={log.problem} />
      <Loading when={!log.data && log.loading} />
      {log.data?.items.length === 0 ? <Empty>No change has been made yet.</Empty> : null}
      {log.data && log.data.items.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="admin-audit-log">
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>Action</th>
                <th>Target</th>
                <th>Change</th>
              </tr>
            </thead>
            <tbody>
              {log.data.items.map((entry) => (
                <tr key={entry.id}>
                  <td>
                    <Time iso={entry.at} />
                  </td>
                  <td>
                    {entry.actor} <span className="muted">({entry.actorType})</span>
                  </td>
                  <td>{entry.action}</td>
                  <td>
                    {entry.targetType} <code>{entry.targetId}</code>
                  </td>
                  <td>
                    <details>
                      <summary>before / after</summary>
                      <pre className="body">
                        {JSON.stringify({ before: entry.before, after: entry.after }, null, 2)}
                      </pre>
                    </details>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <div className="pager">
        {cursors.length > 0 ? (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer
          </button>
        ) : null}
        {log.data?.nextCursor ? (
          <button type="button" onClick={() => setCursors([...cursors, log.data?.nextCursor as string])}>
            Older
          </button>
        ) : null}
      </div>
    </section>
  );
}
