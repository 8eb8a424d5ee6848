import { type FormEvent, useState } from "react";
import { type Answer, api, call, type operations } from "../api/client";
import { ChainVerifier } from "../components/chain-verifier";
import { Badge, Empty, Loading, PageTitle, ProblemNote, Subject, Time } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link, navigate, useLocation } from "../router";

type Query = NonNullable<operations["listSessions"]["parameters"]["query"]>;
type Page = Answer<"listSessions">;

const FILTERS = ["user", "group", "connection", "model", "decision", "q", "from", "to"] as const;
const DECISIONS = ["allowed", "masked", "blocked", "approval_required", "approved", "denied", "rate_limited", "error"];

/** datetime-local (the person's time zone) to RFC 3339, or undefined. */
function toInstant(local: string | null): string | undefined {
  if (!local) return undefined;
  const time = new Date(local);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}

/** The filters live in the URL, so a search can be bookmarked and shared. */
export function Sessions() {
  const { query } = useLocation();
  const filters = Object.fromEntries(FILTERS.map((name) => [name, query.get(name) ?? ""])) as Record<
    (typeof FILTERS)[number],
    string
  >;
  const cursor = query.get("cursor") ?? undefined;
  const search: Query = { limit: 50 };
  if (filters.user) search.user = filters.user;
  if (filters.group) search.group = filters.group;
  if (filters.connection) search.connection = filters.connection;
  if (filters.model) search.model = filters.model;
  if (filters.decision) search.decision = filters.decision as Query["decision"];
  if (filters.q) search.q = filters.q;
  const from = toInstant(filters.from);
  const to = toInstant(filters.to);
  if (from) search.from = from;
  if (to) search.to = to;
  if (cursor) search.cursor = cursor;

  const list = useApi(
    () => call<Page>(api.GET("/api/v1/sessions", { params: { query: search } })),
    JSON.stringify(search),
    // The newest page follows traffic as it lands; older pages hold still.
    cursor ? undefined : 5_000,
  );

  return (
    <section>
      <PageTitle actions={<ChainVerifier />}>Sessions</PageTitle>
      <SearchForm initial={filters} />
      <ProblemNote problem={list.problem} />
      <Loading when={!list.data && list.loading} />
      {list.data && list.data.items.length === 0 ? <Empty>No sessions match.</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="sessions">
            <thead>
              <tr>
                <th>Received</th>
                <th>Who</th>
                <th>Connection / model</th>
                <th>Endpoint</th>
                <th>Decision</th>
                <th className="number">Status</th>
                <th className="number">Latency</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((session) => (
                <tr key={session.id}>
                  <td>
                    <Link to={`/sessions/${encodeURIComponent(session.id)}`}>
                      <Time iso={session.receivedAt} />
                    </Link>
                  </td>
                  <td>
                    <Subject subject={session.subject} />
                  </td>
                  <td>
                    {session.connection ?? "—"} / {session.model ?? "—"}
                  </td>
                  <td>
                    <code>
                      {session.method} {session.endpoint}
                    </code>
                  </td>
                  <td>
                    <Badge value={session.decision} />
                  </td>
                  <td className="number">{session.responseStatus ?? "—"}</td>
                  <td className="number">{session.latencyMs === null ? "—" : `${session.latencyMs} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <div className="pager">
        {cursor ? (
          <button type="button" onClick={() => navigate(`/sessions?${withParam(query, "cursor", undefined)}`)}>
            Newest
          </button>
        ) : null}
        {list.data?.nextCursor ? (
          <button
            type="button"
            onClick={() => navigate(`/sessions?${withParam(query, "cursor", list.data?.nextCursor ?? undefined)}`)}
          >
            Older
          </button>
        ) : null}
      </div>
    </section>
  );
}

function withParam(query: URLSearchParams, name: string, value: string | undefined): string {
  const next = new URLSearchParams(query);
  if (value === undefined) next.delete(name);
  else next.set(name, value);
  return next.toString();
}

function SearchForm({ initial }: { initial: Record<(typeof FILTERS)[number], string> }) {
  const [values, setValues] = useState(initial);
  const set = (name: (typeof FILTERS)[number]) => (event: { target: { value: string } }) =>
    setValues({ ...values, [name]: event.target.value });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (values[name].trim()) next.set(name, values[name].trim());
    navigate(`/sessions?${next}`);
  };
  return (
    <form className="search" onSubmit={submit} aria-label="Search sessions">
      <label>
        Subject (id or email)
        <input value={values.user} onChange={set("user")} maxLength={320} />
      </label>
      <label>
        Group
        <input value={values.group} onChange={set("group")} maxLength={256} />
      </label>
      <label>
        Connection
        <input value={values.connection} onChange={set("connection")} maxLength={63} />
      </label>
      <label>
        Model
        <input value={values.model} onChange={set("model")} maxLength={256} />
      </label>
      <label>
        Decision
        <select value={values.decision} onChange={set("decision")}>
          <option value="">any</option>
          {DECISIONS.map((decision) => (
            <option key={decision} value={decision}>
              {decision.replaceAll("_", " ")}
            </option>
          ))}
        </select>
      </label>
      <label>
        From
        <input type="datetime-local" value={values.from} onChange={set("from")} />
      </label>
      <label>
        To
        <input type="datetime-local" value={values.to} onChange={set("to")} />
      </label>
      <label className="wide">
        Text in the prompt or answer
        <input type="search" value={values.q} onChange={set("q")} maxLength={256} />
      </label>
      <div className="actions">
        <button type="submit" className="primary">
          Search
        </button>
      </div>
    </form>
  );
}
