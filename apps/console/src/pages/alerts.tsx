import { useState } from "react";
import { type Answer, api, call, type Problem, problemOf } from "../api/client";
import { Empty, Loading, PageTitle, ProblemNote, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";
import { hasAnyRole, useSignedIn } from "../session";

type Exporter = Answer<"listExporters">["items"][number];
type TestResult = Answer<"testExporter">;

/** Alerts for auditors and admins; exporters and alert rules are configuration: admins only. */
export function Alerts() {
  const session = useSignedIn();
  const isAdmin = hasAnyRole(session, ["admin"]);
  return (
    <section>
      <PageTitle>Exporters and alerts</PageTitle>
      <RaisedAlerts />
      {isAdmin ? (
        <>
          <Exporters />
          <AlertRules />
        </>
      ) : (
        <p className="muted">Exporters and alert rules are configured by admins.</p>
      )}
    </section>
  );
}

function RaisedAlerts() {
  const alerts = useApi(() => call(api.GET("/api/v1/alerts", { params: { query: { limit: 50 } } })), "alerts", 10_000);
  return (
    <div className="panel">
      <h2>Alerts raised</h2>
      <ProblemNote problem={alerts.problem} />
      <Loading when={!alerts.data && alerts.loading} />
      {alerts.data?.items.length === 0 ? <Empty>No alert has fired.</Empty> : null}
      {alerts.data && alerts.data.items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Rule</th>
              <th>Subject</th>
              <th>Sessions</th>
            </tr>
          </thead>
          <tbody>
            {alerts.data.items.map((alert) => (
              <tr key={alert.id}>
                <td>
                  <Time iso={alert.triggeredAt} />
                </td>
                <td>
                  {alert.ruleName} <span className="muted">({alert.kind.replaceAll("_", " ")})</span>
                </td>
                <td>{alert.subject ?? "—"}</td>
                <td>
                  {alert.sessionIds.slice(0, 5).map((id) => (
                    <Link key={id} to={`/sessions/${encodeURIComponent(id)}`}>
                      {id.slice(0, 8)}{" "}
                    </Link>
                  ))}
                  {alert.sessionIds.length > 5 ? <span className="muted">+{alert.sessionIds.length - 5}</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function Exporters() {
  const exporters = useApi(
    () => call(api.GET("/api/v1/exporters", { params: { query: { limit: 100 } } })),
    "exporters",
    10_000,
  );
  const [results, setResults] = useState<Record<string, TestResult | Problem>>({});
  const test = async (exporter: Exporter) => {
    try {
      const result = await call(api.POST("/api/v1/exporters/{id}/test", { params: { path: { id: exporter.id } } }));
      setResults((current) => ({ ...current, [exporter.id]: result }));
    } catch (error) {
      const problem = problemOf(error);
      setResults((current) => ({ ...current, [exporter.id]: problem }));
    }
  };
  return (
    <div className="panel">
      <h2>SIEM exporters</h2>
      <ProblemNote problem={exporters.problem} />
      {exporters.data?.items.length === 0 ? (
        <Empty>
          No exporter. Add one with <code>POST /api/v1/exporters</code> (docs/siem.md).
        </Empty>
      ) : null}
      {exporters.data && exporters.data.items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Destination</th>
              <th className="number">Delivered</th>
              <th className="number">Failed</th>
              <th>Last error</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {exporters.data.items.map((exporter) => {
              const result = results[exporter.id];
              return (
                <tr key={exporter.id}>
                  <td>
                    {exporter.name} {exporter.enabled ? null : <span className="muted">(disabled)</span>}
                  </td>
                  <td>
                    <code>{exporter.kind === "webhook" ? exporter.url : `${exporter.host}:${exporter.port}`}</code>
                  </td>
                  <td className="number">{exporter.delivery.delivered}</td>
                  <td className="number">{exporter.delivery.failed}</td>
                  <td>
                    {exporter.delivery.lastError ?? "—"} <Time iso={exporter.delivery.lastFailureAt} />
                  </td>
                  <td>
                    <button type="button" className="small" onClick={() => void test(exporter)}>
                      Send a test event
                    </button>
                    {result ? (
                      <div role="status">
                        {"delivered" in result
                          ? result.delivered
                            ? "delivered"
                            : `not delivered: ${result.error ?? "unknown"}`
                          : result.detail}
                      </div>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function AlertRules() {
  const rules = useApi(() => call(api.GET("/api/v1/alert-rules", { params: { query: { limit: 100 } } })), "rules");
  return (
    <div className="panel">
      <h2>Alert rules</h2>
      <ProblemNote problem={rules.problem} />
      {rules.data?.items.length === 0 ? (
        <Empty>
          No alert rule. Add one with <code>POST /api/v1/alert-rules</code> (docs/siem.md).
        </Empty>
      ) : null}
      {rules.data && rules.data.items.length > 0 ? (
        <table>
          <tbody>
            {rules.data.items.map((rule) => (
              <tr key={rule.id}>
                <td>
                  {rule.name} {rule.enabled ? null : <span className="muted">(disabled)</span>}
                </td>
                <td>{rule.kind.replaceAll("_", " ")}</td>
                <td className="muted">
                  {rule.threshold !== undefined ? `${rule.threshold} in ${rule.windowSeconds ?? "?"} s` : null}
                  {rule.factor !== undefined ? `${rule.factor}× baseline` : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
