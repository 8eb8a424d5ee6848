import { type FormEvent, useState } from "react";
import { type Answer, api, type BodyOf, call, type Problem, problemOf } from "../api/client";
import { Badge, PageTitle, ProblemNote } from "../components/ui";
import { Link } from "../router";

type Evaluation = Answer<"evaluatePolicies">;
type Request = BodyOf<"evaluatePolicies">["request"];

const OPERATIONS: Request["operation"][] = ["inference", "embeddings", "models.list", "read", "raw"];

/** Dry run: the decision a gateway would make for a subject and a request, and why. */
export function PolicyEvaluate() {
  const [form, setForm] = useState({
    groups: "",
    user: "",
    email: "",
    apiKeyId: "",
    connection: "",
    model: "",
    operation: "inference" as Request["operation"],
    body: '{\n  "messages": [{ "role": "user", "content": "Hello" }]\n}',
  });
  const [result, setResult] = useState<Evaluation>();
  const [problem, setProblem] = useState<Problem>();
  const set = (name: keyof typeof form) => (event: { target: { value: string } }) =>
    setForm({ ...form, [name]: event.target.value });

  const evaluate = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    setResult(undefined);
    let body: Record<string, unknown> | undefined;
    if (form.body.trim()) {
      try {
        body = JSON.parse(form.body) as Record<string, unknown>;
      } catch (error) {
        setProblem({
          status: 0,
          code: "invalid_json",
          detail: `the request body is not JSON: ${(error as Error).message}`,
        });
        return;
      }
    }
    const groups = form.groups
      .split(",")
      .map((group) => group.trim())
      .filter(Boolean);
    const request: Request = { connection: form.connection.trim(), operation: form.operation };
    if (form.model.trim()) request.model = form.model.trim();
    if (body) request.body = body;
    try {
      setResult(
        await call(
          api.POST("/api/v1/policies/evaluate", {
            body: {
              subject: {
                groups,
                ...(form.user.trim() ? { user: form.user.trim() } : {}),
                ...(form.email.trim() ? { email: form.email.trim() } : {}),
                ...(form.apiKeyId.trim() ? { apiKeyId: form.apiKeyId.trim() } : {}),
              },
              request,
            },
          }),
        ),
      );
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  return (
    <section>
      <PageTitle>
        <Link to="/policies">Policies</Link> / evaluate
      </PageTitle>
      <form className="panel stacked" onSubmit={(event) => void evaluate(event)} aria-label="Evaluate a request">
        <fieldset>
          <legend>Subject</legend>
          <label>
            Groups (comma separated)
            <input value={form.groups} onChange={set("groups")} />
          </label>
          <label>
            User id
            <input value={form.user} onChange={set("user")} />
          </label>
          <label>
            Email
            <input type="email" value={form.email} onChange={set("email")} />
          </label>
          <label>
            API key id (for a service account)
            <input value={form.apiKeyId} onChange={set("apiKeyId")} />
          </label>
        </fieldset>
        <fieldset>
          <legend>Request</legend>
          <label>
            Connection
            <input value={form.connection} onChange={set("connection")} required />
          </label>
          <label>
            Model
            <input value={form.model} onChange={set("model")} />
          </label>
          <label>
            Operation
            <select value={form.operation} onChange={set("operation")}>
              {OPERATIONS.map((operation) => (
                <option key={operation}>{operation}</option>
              ))}
            </select>
          </label>
          <label>
            Body (JSON, as the client would send it)
            <textarea rows={6} spellCheck={false} value={form.body} onChange={set("body")} />
          </label>
        </fieldset>
        <button type="submit" className="primary">
          Evaluate
        </button>
      </form>
      <ProblemNote problem={problem} />
      {result ? (
        <div className="panel" data-testid="evaluation">
          <h2>
            Decision: <Badge value={result.decision} /> {result.code ? <code>{result.code}</code> : null}
          </h2>
          {result.reasons.length > 0 ? (
            <ul>
              {result.reasons.map((reason) => (
                <li key={reason}>{reason}</li>
              ))}
            </ul>
          ) : null}
          <p>
            Policies that matched:{" "}
            {result.policyIds.length
              ? result.policyIds.map((id) => (
                  <Link key={id} to={`/policies/${id}`}>
                    {id}{" "}
                  </Link>
                ))
              : "none"}
          </p>
          {result.approvals?.length ? (
            <>
              <h3>Needs approval first</h3>
              <ul>
                {result.approvals.map((approval) => (
                  <li key={`${approval.policyId}-${approval.rule}`}>
                    {approval.policyName}: {approval.reason} ({approval.minApprovals} of{" "}
                    {approval.approverGroups.join(", ")})
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
