import { type FormEvent, useState } from "react";
import { type Answer, api, type BodyOf, call, type Problem, problemOf } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, ShownOnce, Time } from "../components/ui";
import { useApi } from "../components/use-api";

type Key = Answer<"listApiKeys">["items"][number];
type Created = Answer<"createApiKey">;

export function ApiKeys() {
  const list = useApi(() => call(api.GET("/api/v1/api-keys", { params: { query: { limit: 500 } } })), "keys");
  const [created, setCreated] = useState<Created>();
  const [problem, setProblem] = useState<Problem>();

  const revoke = async (key: Key) => {
    if (!window.confirm(`Revoke ${key.name}? Calls with it are refused from now on.`)) return;
    setProblem(undefined);
    try {
      await call(api.DELETE("/api/v1/api-keys/{id}", { params: { path: { id: key.id } } }));
      list.reload();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  return (
    <section>
      <PageTitle>API keys</PageTitle>
      <p className="muted">
        Service accounts: a key stands for its groups, which policies grant. Keys are stored hashed.
      </p>
      {created ? (
        <ShownOnce label={`API key ${created.name}`} value={created.key}>
          <p>
            Clients send it as <code>Authorization: Bearer …</code> to the gateway.
          </p>
          <button type="button" onClick={() => setCreated(undefined)}>
            I have stored the key
          </button>
        </ShownOnce>
      ) : null}
      <ProblemNote problem={list.problem ?? problem} />
      <Loading when={!list.data && list.loading} />
      {list.data?.items.length === 0 ? <Empty>No API keys.</Empty> : null}
      {list.data && list.data.items.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="api-keys">
            <thead>
              <tr>
                <th>Name</th>
                <th>Key</th>
                <th>Groups</th>
                <th>Status</th>
                <th>Expires</th>
                <th>Last used</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((key) => (
                <tr key={key.id} data-testid={`key-${key.name}`}>
                  <td>{key.name}</td>
                  <td>
                    <code>{key.keyPrefix}…</code>
                  </td>
                  <td>{key.groups.join(", ") || "—"}</td>
                  <td>
                    <Badge
                      value={key.status === "active" ? "allowed" : key.status === "revoked" ? "denied" : "expired"}
                    />{" "}
                    <span className="muted">{key.status}</span>
                  </td>
                  <td>
                    <Time iso={key.expiresAt} />
                  </td>
                  <td>
                    <Time iso={key.lastUsedAt} />
                  </td>
                  <td>
                    {key.status === "active" ? (
                      <button type="button" className="danger small" onClick={() => void revoke(key)}>
                        Revoke
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <NewKey
        onCreated={(key) => {
          setCreated(key);
          list.reload();
        }}
      />
    </section>
  );
}

function NewKey({ onCreated }: { onCreated: (key: Created) => void }) {
  const [form, setForm] = useState({ name: "", groups: "", expiresAt: "" });
  const [problem, setProblem] = useState<Problem>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    const body: BodyOf<"createApiKey"> = {
      name: form.name.trim(),
      groups: form.groups
        .split(",")
        .map((group) => group.trim())
        .filter(Boolean),
    };
    if (form.expiresAt) body.expiresAt = new Date(form.expiresAt).toISOString();
    try {
      onCreated(await call(api.POST("/api/v1/api-keys", { body })));
      setForm({ name: "", groups: "", expiresAt: "" });
    } catch (error) {
      setProblem(problemOf(error));
    }
  };
  return (
    <form className="panel stacked" onSubmit={(event) => void submit(event)} aria-label="Create an API key">
      <h2>Create an API key</h2>
      <label>
        Name
        <input
          value={form.name}
          onChange={(event) => setForm({ ...form, name: event.target.value })}
          required
          maxLength={128}
        />
      </label>
      <label>
        Groups (comma separated; what policies grant)
        <input value={form.groups} onChange={(event) => setForm({ ...form, groups: event.target.value })} />
      </label>
      <label>
        Expires (optional)
        <input
          type="datetime-local"
          value={form.expiresAt}
          onChange={(event) => setForm({ ...form, expiresAt: event.target.value })}
        />
      </label>
      <button type="submit" className="primary">
        Create key
      </button>
      <ProblemNote problem={problem} />
    </form>
  );
}
