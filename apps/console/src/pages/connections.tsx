import { type FormEvent, useState } from "react";
import { type Answer, allPages, api, type BodyOf, call, type Problem, problemOf } from "../api/client";
import { Badge, Empty, Loading, PageTitle, ProblemNote, ShownOnce, Time } from "../components/ui";
import { useApi } from "../components/use-api";

type Connection = Answer<"listConnections">["items"][number];
type Agent = Answer<"listAgents">["items"][number];
type Protocol = BodyOf<"createConnection">["protocol"];

const RUNTIME_PORT: Record<Protocol, string> = {
  openai: "http://127.0.0.1:8000",
  ollama: "http://127.0.0.1:11434",
  tgi: "http://127.0.0.1:8080",
  http: "http://127.0.0.1:8000",
};

export function Connections() {
  const data = useApi(
    async () => {
      const [connections, agents] = await Promise.all([
        allPages<Connection>((cursor) =>
          call(api.GET("/api/v1/connections", { params: { query: { limit: 500, ...(cursor ? { cursor } : {}) } } })),
        ),
        allPages<Agent>((cursor) =>
          call(api.GET("/api/v1/agents", { params: { query: { limit: 500, ...(cursor ? { cursor } : {}) } } })),
        ),
      ]);
      return { connections, agents };
    },
    "connections",
    5_000,
  );
  const [issued, setIssued] = useState<{ connection: Connection; token: string; name: string }>();

  return (
    <section>
      <PageTitle>Connections and agents</PageTitle>
      <ProblemNote problem={data.problem} />
      <Loading when={!data.data && data.loading} />
      {issued ? <AgentCommand {...issued} onDone={() => setIssued(undefined)} /> : null}
      {data.data?.connections.length === 0 ? <Empty>No connection yet: register the first runtime below.</Empty> : null}
      {data.data?.connections.map((connection) => (
        <ConnectionCard
          key={connection.name}
          connection={connection}
          agents={data.data?.agents.filter((agent) => agent.connection === connection.name) ?? []}
          onIssued={(token, name) => {
            setIssued({ connection, token, name });
            data.reload();
          }}
          onChanged={data.reload}
        />
      ))}
      <NewConnection onCreated={data.reload} />
    </section>
  );
}

function ConnectionCard({
  connection,
  agents,
  onIssued,
  onChanged,
}: {
  connection: Connection;
  agents: Agent[];
  onIssued: (token: string, name: string) => void;
  onChanged: () => void;
}) {
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<Problem>();
  const issue = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    try {
      const answer = await call(
        api.POST("/api/v1/connections/{name}/agents", {
          params: { path: { name: connection.name } },
          body: { name: name.trim() },
        }),
      );
      setName("");
      onIssued(answer.token, answer.name);
    } catch (error) {
      setProblem(problemOf(error));
    }
  };
  const revoke = async (agent: Agent) => {
    if (!window.confirm(`Revoke agent ${agent.name}? Its tunnels close at once.`)) return;
    try {
      await call(api.DELETE("/api/v1/agents/{id}", { params: { path: { id: agent.id } } }));
      onChanged();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };
  const active = agents.filter((agent) => agent.status === "active");
  return (
    <article className="panel" data-testid={`connection-${connection.name}`}>
      <h2>
        {connection.name} <span className="muted">({connection.protocol})</span>
      </h2>
      {connection.description ? <p>{connection.description}</p> : null}
      <p>
        Models: <code>{connection.models.join(", ")}</code>
      </p>
      {active.length === 0 ? (
        <Empty>No agent: issue a token below and start one beside the runtime.</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Agent</th>
                <th>Tunnel</th>
                <th className="number">In flight</th>
                <th>Runtime</th>
                <th>Version</th>
                <th>Last heartbeat</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {active.map((agent) => (
                <tr key={agent.id}>
                  <td>
                    {agent.name} <span className="muted">{agent.tokenPrefix}…</span>
                  </td>
                  <td>
                    <Badge value={agent.tunnel.state} />
                  </td>
                  <td className="number">
                    {agent.tunnel.inFlight}/{agent.tunnel.capacity}
                  </td>
                  <td>
                    {agent.tunnel.runtimeHealthy === null
                      ? "unknown"
                      : agent.tunnel.runtimeHealthy
                        ? "healthy"
                        : "unhealthy"}
                  </td>
                  <td>{agent.version ?? "—"}</td>
                  <td>
                    <Time iso={agent.tunnel.lastHeartbeatAt ?? agent.lastSeenAt} />
                  </td>
                  <td>
                    <button type="button" className="danger small" onClick={() => void revoke(agent)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form className="inline" onSubmit={(event) => void issue(event)}>
        <label>
          New agent's name
          <input value={name} onChange={(event) => setName(event.target.value)} required maxLength={63} />
        </label>
        <button type="submit">Issue agent token</button>
      </form>
      <ProblemNote problem={problem} />
    </article>
  );
}

/** The token, once, with the exact command that starts an agent beside the runtime. */
function AgentCommand({
  connection,
  token,
  name,
  onDone,
}: {
  connection: Connection;
  token: string;
  name: string;
  onDone: () => void;
}) {
  const gateway = ["127.0.0.1", "localhost", "[::1]"].includes(window.location.hostname)
    ? "grpc://127.0.0.1:8443"
    : "grpcs://GATEWAY_HOST:8443";
  const command = [
    `MODELGATE_AGENT_TOKEN='${token}'`,
    `MODELGATE_GATEWAY_URLS=${gateway}`,
    `MODELGATE_RUNTIME_URL=${RUNTIME_PORT[connection.protocol]}`,
    "node apps/agent/dist/main.js",
  ].join(" \\\n  ");
  return (
    <ShownOnce label={`Agent token for ${name} (${connection.name})`} value={token}>
      <p>Start the agent on the runtime's host (it dials out to the gateways; the host needs no inbound port):</p>
      <pre className="command" data-testid="agent-command">
        {command}
      </pre>
      <p className="muted">
        Or with the image: <code>docker run -e MODELGATE_AGENT_TOKEN … modelgate agent</code>. Set the gateways' tunnel
        addresses and the runtime's URL for your hosts (docs/data-path.md lists every setting).
      </p>
      <button type="button" onClick={onDone}>
        I have stored the token
      </button>
    </ShownOnce>
  );
}

function NewConnection({ onCreated }: { onCreated: () => void }) {
  const [form, setForm] = useState({ name: "", protocol: "openai" as Protocol, models: "", description: "" });
  const [problem, setProblem] = useState<Problem>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    const body: BodyOf<"createConnection"> = {
      name: form.name.trim(),
      protocol: form.protocol,
      models: form.models
        .split(/[\s,]+/)
        .map((model) => model.trim())
        .filter(Boolean),
    };
    if (form.description.trim()) body.description = form.description.trim();
    try {
      await call(api.POST("/api/v1/connections", { body }));
      setForm({ name: "", protocol: "openai", models: "", description: "" });
      onCreated();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };
  return (
    <form className="panel stacked" onSubmit={(event) => void submit(event)} aria-label="Register a connection">
      <h2>Register a connection</h2>
      <label>
        Name (lowercase letters, digits, dashes)
        <input value={form.name} onChange={(event) => setForm({ ...form, name: event.target.value })} required />
      </label>
      <label>
        Protocol
        <select
          value={form.protocol}
          onChange={(event) => setForm({ ...form, protocol: event.target.value as Protocol })}
        >
          <option value="openai">OpenAI-compatible (vLLM, llama.cpp)</option>
          <option value="ollama">Ollama</option>
          <option value="tgi">TGI</option>
          <option value="http">plain HTTP</option>
        </select>
      </label>
      <label>
        Models (comma or space separated)
        <input value={form.models} onChange={(event) => setForm({ ...form, models: event.target.value })} required />
      </label>
      <label>
        Description
        <input value={form.description} onChange={(event) => setForm({ ...form, description: event.target.value })} />
      </label>
      <button type="submit" className="primary">
        Register
      </button>
      <ProblemNote problem={problem} />
    </form>
  );
}
