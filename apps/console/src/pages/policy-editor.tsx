import { useEffect, useMemo, useState } from "react";
import { type Answer, api, type BodyOf, call, type Problem, problemOf } from "../api/client";
import { LineDiff } from "../components/line-diff";
import { Loading, PageTitle, ProblemNote } from "../components/ui";
import { useApi } from "../components/use-api";
import { Link, navigate } from "../router";

type Policy = Answer<"getPolicy">;
type PolicyDocument = BodyOf<"createPolicy">;

/** What a person edits: the policy as it is created or replaced, without what the server keeps. */
const EDITABLE = [
  "name",
  "description",
  "enabled",
  "subjects",
  "resources",
  "operations",
  "limits",
  "promptRules",
  "masking",
  "approval",
] as const;

const TEMPLATE = {
  name: "",
  description: "What this grants, and to whom",
  enabled: true,
  subjects: { groups: ["research"] },
  resources: [{ connection: "local", models: ["*"] }],
  operations: ["inference"],
};

function editableOf(policy: Policy): Record<string, unknown> {
  const document: Record<string, unknown> = {};
  for (const field of EDITABLE) {
    const value = (policy as Record<string, unknown>)[field];
    if (value !== undefined && value !== null) document[field] = value;
  }
  return document;
}

const print = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/**
 * The line of `text` (as `print` lays it out) where a problem's field path
 * starts, so an error can be shown beside the field it is about.
 */
function lineOfPath(text: string, path: string): number | undefined {
  const parts = path.split(".").slice(1); // "body.resources.0.connection" → resources, 0, connection
  const lines = text.split("\n");
  let line = 0;
  for (const part of parts) {
    if (/^\d+$/.test(part)) continue; // array positions: the next key's search starts from here
    const key = `"${part}":`;
    const found = lines.findIndex((candidate, index) => index >= line && candidate.trimStart().startsWith(key));
    if (found < 0) return line > 0 ? line + 1 : undefined;
    line = found;
  }
  return parts.length > 0 ? line + 1 : undefined;
}

export function PolicyEditor({ id }: { id?: string | undefined }) {
  const existing = useApi(
    () =>
      id ? call<Policy>(api.GET("/api/v1/policies/{id}", { params: { path: { id } } })) : Promise.resolve(undefined),
    id ?? "new",
  );
  const saved = useMemo(() => (existing.data ? print(editableOf(existing.data)) : ""), [existing.data]);
  const [text, setText] = useState<string>();
  const [reviewing, setReviewing] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const [notice, setNotice] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!id) setText(print(TEMPLATE));
    else if (existing.data) setText(saved);
  }, [id, existing.data, saved]);

  const parsed = useMemo((): { value?: PolicyDocument; error?: string } => {
    if (text === undefined) return {};
    try {
      const value = JSON.parse(text) as unknown;
      if (!value || typeof value !== "object" || Array.isArray(value))
        return { error: "the policy must be a JSON object" };
      return { value: value as PolicyDocument };
    } catch (error) {
      return { error: `not valid JSON: ${(error as Error).message}` };
    }
  }, [text]);

  const review = () => {
    setProblem(undefined);
    setNotice(undefined);
    // Lay the document out the one way, so the diff shows changes, not whitespace.
    if (parsed.value) setText(print(parsed.value));
    setReviewing(true);
  };

  const save = async () => {
    if (!parsed.value) return;
    setBusy(true);
    setProblem(undefined);
    try {
      if (id) {
        const answer = await call(api.PUT("/api/v1/policies/{id}", { params: { path: { id } }, body: parsed.value }));
        setNotice(`Saved as revision ${answer.revision}. Gateways enforce it within a second.`);
        existing.reload();
      } else {
        const answer = await call(api.POST("/api/v1/policies", { body: parsed.value }));
        navigate(`/policies/${answer.id}`, { replace: true });
      }
      setReviewing(false);
    } catch (error) {
      setProblem(problemOf(error));
      setReviewing(false);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!id || !window.confirm("Delete this policy? What it grants is refused from the next request on.")) return;
    try {
      await call(api.DELETE("/api/v1/policies/{id}", { params: { path: { id } } }));
      navigate("/policies");
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  const fieldErrors = (problem?.errors ?? []).map((issue) => ({
    ...issue,
    line: text === undefined ? undefined : lineOfPath(text, issue.path),
  }));

  return (
    <section>
      <PageTitle
        actions={
          id ? (
            <button type="button" className="danger" onClick={() => void remove()}>
              Delete
            </button>
          ) : null
        }
      >
        <Link to="/policies">Policies</Link> / {id ? (existing.data?.name ?? "…") : "new"}
        {existing.data ? <span className="muted"> · revision {existing.data.revision}</span> : null}
      </PageTitle>
      <ProblemNote problem={existing.problem} />
      <Loading when={Boolean(id) && !existing.data && existing.loading} />
      {text !== undefined ? (
        <div className="editor">
          <label htmlFor="policy-json">Policy (JSON; docs/policies.md describes every field)</label>
          <textarea
            id="policy-json"
            spellCheck={false}
            value={text}
            rows={Math.min(40, Math.max(12, text.split("\n").length + 1))}
            aria-invalid={Boolean(parsed.error) || fieldErrors.length > 0}
            aria-describedby="policy-errors"
            onChange={(event) => {
              setText(event.target.value);
              setReviewing(false);
            }}
          />
          <div id="policy-errors">
            {parsed.error ? (
              <p className="field-error" role="alert">
                {parsed.error}
              </p>
            ) : null}
            {fieldErrors.map((issue) => (
              <p key={issue.path} className="field-error" role="alert" data-testid="field-error">
                {issue.line ? <span className="line">line {issue.line}</span> : null}{" "}
                <code>{issue.path.replace(/^body\./, "")}</code>: {issue.message}
              </p>
            ))}
          </div>
          {problem && fieldErrors.length === 0 ? <ProblemNote problem={problem} /> : null}
          {notice ? (
            <p className="notice" role="status">
              {notice}
            </p>
          ) : null}
          {reviewing && parsed.value ? (
            <>
              <h2>Changes</h2>
              <LineDiff before={saved} after={text} />
              <div className="actions">
                <button type="button" className="primary" disabled={busy || text === saved} onClick={() => void save()}>
                  {id ? "Save" : "Create"}
                </button>
                <button type="button" onClick={() => setReviewing(false)}>
                  Keep editing
                </button>
              </div>
            </>
          ) : (
            <div className="actions">
              <button type="button" className="primary" disabled={Boolean(parsed.error)} onClick={review}>
                Review changes
              </button>
              {id ? (
                <button type="button" onClick={() => setText(saved)} disabled={text === saved}>
                  Discard changes
                </button>
              ) : null}
            </div>
          )}
        </div>
      ) : null}
    </section>
  );
}
