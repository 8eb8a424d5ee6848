import { type FormEvent, useState } from "react";
import { type Answer, api, type BodyOf, call, type Problem, problemOf } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, ShownOnce, Time } from "../components/ui";
import { useApi } from "../components/use-api";

type Key = Answer<"listApiKeys">["items"][number];
type Created = Answer<"createApiKey">;
type Rotated = Answer<"rotateApiKey">;

/** How long the replaced secret keeps working, to roll the new one out. */
const OVERLAPS = [
  { seconds: 3600, label: "1 hour" },
  { seconds: 86_400, label: "1 day" },
  { seconds: 0, label: "none: the old secret stops now (it leaked)" },
];

export function ApiKeys() {
  const list = useApi(() => call(api.GET("/api/v1/api-keys", { params: { query: { limit: 500 } } })), "keys");
  const [created, setCreated] = useState<Created>();
  const [rotated, setRotated] = useState<Rotated>();
  const [rotating, setRotating] = useState<Key>();
  const [problem, setProblem] = useState<Problem>();

  const rotate = async (key: Key, overlapSeconds: number) => {
    setProblem(undefined);
    try {
      setRotated(
        await call(
          api.POST("/api/v1/api-keys/{id}/rotate", { params: { path: { id: key.id } }, body: { overlapSeconds } }),
        ),
      );
      setRotating(undefined);
      list.reload();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

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
      {rotated ? (
        <ShownOnce label={`New secret for ${rotated.name}`} value={rotated.key}>
          <p>
            {rotated.previousKeyExpiresAt && rotated.previousKeyExpiresAt !== rotated.rotatedAt ? (
              <>
                The previous secret keeps working until <Time iso={rotated.previousKeyExpiresAt} />: roll the new one
                out before then.
              </>
            ) : (
              "The previous secret no longer works."
            )}{" "}
            The key keeps its id, name and groups, so policies and sessions still name it.
          </p>
          <button type="button" onClick={() => setRotated(undefined)}>
            I have stored the new secret
          </button>
        </ShownOnce>
      ) : null}
      {rotating ? (
        <RotateForm key={rotating.id} apiKey={rotating} onRotate={rotate} onCancel={() => setRotating(undefined)} />
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
                <th>Rotated</th>
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
                    <Badge value={key.status} />
                  </td>
                  <td>
                    <Time iso={key.expiresAt} />
                  </td>
                  <td>
                    <Time iso={key.rotatedAt} />
                    {key.previousKeyExpiresAt ? (
                      <div className="muted">
                        old secret until <Time iso={key.previousKeyExpiresAt} />
                      </div>
                    ) : null}
                  </td>
                  <td>
                    {key.status === "active" ? (
                      <div className="actions">
                        <button type="button" className="small" onClick={() => setRotating(key)}>
                          Rotate
                        </button>
                        <button type="button" className="danger small" onClick={() => void revoke(key)}>
                          Revoke
                        </button>
                      </div>
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

function RotateForm({
  apiKey,
  onRotate,
  onCancel,
}: {
  apiKey: Key;
  onRotate: (key: Key, overlapSeconds: number) => Promise<void>;
  onCancel: () => void;
}) {
  const [overlap, setOverlap] = useState(OVERLAPS[0]?.seconds ?? 3600);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      await onRotate(apiKey, overlap);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="panel stacked" onSubmit={(event) => void submit(event)} aria-label="Rotate an API key">
      <h2>Rotate {apiKey.name}</h2>
      <p>A new secret replaces the current one; the key keeps its id, name, groups and expiry.</p>
      <label>
        The current secret keeps working for
        <select value={overlap} onChange={(event) => setOverlap(Number(event.target.value))}>
          {OVERLAPS.map((option) => (
            <option key={option.seconds} value={option.seconds}>
              {option.label}
            </option>
          ))}
        </select>
      </label>
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          Rotate
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
