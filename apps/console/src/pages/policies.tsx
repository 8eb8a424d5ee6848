import { type Answer, api, call } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link } from "../router";

type Page = Answer<"listPolicies">;

export function Policies() {
  const list = useApi(() => call<Page>(api.GET("/api/v1/policies", { params: { query: { limit: 500 } } })), "policies");
  return (
    <section>
      <PageTitle
        actions={
          <>
            <Link to="/policies/evaluate" className="button">
              Evaluate a request
            </Link>
            <Link to="/policies/new" className="button primary">
              New policy
            </Link>
          </>
        }
      >
        Policies
      </PageTitle>
      <p className="muted">
        Default deny: a request passes only when a policy grants its subject, connection, model and operation.
      </p>
      <ProblemNote problem={list.problem} />
      <Loading when={!list.data && list.loading} />
      {list.data?.items.length === 0 ? <Empty>No policy: every request is refused.</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="policies">
            <thead>
              <tr>
                <th>Name</th>
                <th>Subjects</th>
                <th>Resources</th>
                <th>Operations</th>
                <th className="number">Revision</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((policy) => (
                <tr key={policy.id}>
                  <td>
                    <Link to={`/policies/${policy.id}`}>{policy.name}</Link>{" "}
                    {policy.enabled ? null : <Badge value="expired" />}
                  </td>
                  <td>
                    {[
                      ...policy.subjects.groups.map((group) => `group ${group}`),
                      ...policy.subjects.users,
                      ...policy.subjects.apiKeys.map((key) => `key ${key.slice(0, 8)}`),
                    ].join(", ") || "—"}
                  </td>
                  <td>
                    {policy.resources
                      .map((resource) => `${resource.connection}: ${resource.models.join(", ")}`)
                      .join("; ")}
                  </td>
                  <td>{policy.operations.join(", ")}</td>
                  <td className="number">{policy.revision}</td>
                  <td>
                    <Time iso={policy.updatedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {list.data?.nextCursor ? <p className="muted">More than 500 policies: the CLI lists them all.</p> : null}
    </section>
  );
}
