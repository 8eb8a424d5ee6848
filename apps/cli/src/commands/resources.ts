// connections, agents, keys: what callers and agents are registered with.
import { type Command, Option } from "commander";
import { allPages, contextOf, examples, repeatable } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import type { AgentRow } from "./auth.js";

interface ConnectionRow {
  name: string;
  protocol: string;
  models: string[];
  description: string | null;
  createdAt: string;
}

interface KeyRow {
  id: string;
  name: string;
  groups: string[];
  keyPrefix: string;
  status: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
  createdBy: string;
  rotatedAt: string | null;
  previousKeyExpiresAt: string | null;
}

interface RotatedKey {
  id: string;
  name: string;
  key: string;
  rotatedAt: string;
  previousKeyExpiresAt: string;
}

/** The longest overlap the control plane gives a replaced secret (7 days). */
const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;
const DURATION_UNITS: Readonly<Record<string, number>> = { d: 86_400, h: 3600, m: 60, s: 1 };

/**
 * `--overlap`: `0`, whole seconds (`90`), or units from days down to
 * seconds (`1h`, `30m`, `1h30m`, `7d`), at most 7 days.
 */
function parseOverlap(value: string): number {
  const text = value.trim();
  const usage = new CliError(
    `--overlap must be a duration from 0 to 7d, like 1h, 30m, 1h30m or 0 (got ${value})`,
    EXIT.usage,
  );
  let seconds: number;
  if (/^[0-9]+$/.test(text)) seconds = Number(text);
  else {
    const match = /^(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$/.exec(text);
    if (!match || text === "") throw usage;
    seconds = ["d", "h", "m", "s"].reduce(
      (total, unit, index) => total + Number(match[index + 1] ?? 0) * (DURATION_UNITS[unit] as number),
      0,
    );
  }
  if (!Number.isSafeInteger(seconds) || seconds > MAX_OVERLAP_SECONDS) throw usage;
  return seconds;
}

export function registerResources(program: Command): void {
  const connections = program.command("connections").description("Model runtimes callers reach through gateways");
  examples(
    connections
      .command("list")
      .description("Every connection")
      .action(async (_options, command: Command) => {
        const { out, api } = contextOf(command);
        const rows = await allPages<ConnectionRow>(await api(), "/connections");
        out.result(rows, () =>
          out.table(rows, [
            { title: "name", value: (row) => row.name },
            { title: "protocol", value: (row) => row.protocol },
            { title: "models", value: (row) => row.models.join(", ") },
            { title: "description", value: (row) => row.description },
          ]),
        );
      }),
    ["modelgate connections list", "modelgate connections list --json"],
  );
  examples(
    connections
      .command("show <name>")
      .description("One connection and its agents")
      .action(async (name: string, _options, command: Command) => {
        const { out, api: client } = contextOf(command);
        const api = await client();
        const connection = await api.get<ConnectionRow>(`/connections/${encodeURIComponent(name)}`);
        const agents = await allPages<AgentRow>(api, "/agents", { connection: name });
        out.result({ ...connection, agents }, () => {
          out.line(`${connection.name} (${connection.protocol})`);
          out.line(`models: ${connection.models.join(", ")}`);
          if (connection.description) out.line(`description: ${connection.description}`);
          out.line();
          agentTable(out, agents);
        });
      }),
    ["modelgate connections show llama"],
  );
  examples(
    connections
      .command("create <name>")
      .description("Register a connection: a runtime's protocol and the models callers may name")
      .requiredOption("--protocol <protocol>", "openai, ollama, tgi or http")
      .requiredOption("--model <model>", "a model the runtime serves (repeat for several)", repeatable)
      .option("--description <text>", "what it is, for people")
      .action(async (name: string, options: { protocol: string; model: string[]; description?: string }, command) => {
        const { out, api } = contextOf(command);
        const created = await (await api()).post<ConnectionRow>("/connections", {
          name,
          protocol: options.protocol,
          models: options.model,
          ...(options.description ? { description: options.description } : {}),
        });
        out.result(created, () => {
          out.line(`Created connection ${created.name}.`);
          out.line(`Next: \`modelgate agents token ${created.name} --name <agent>\` for an agent beside its runtime.`);
        });
      }),
    ["modelgate connections create llama --protocol openai --model llama-3.1-8b-instruct"],
  );

  const agents = program.command("agents").description("Agents: the processes beside each runtime");
  examples(
    agents
      .command("list")
      .description("Every agent, with its tunnel state")
      .option("--connection <name>", "only this connection's agents")
      .action(async (options: { connection?: string }, command: Command) => {
        const { out, api } = contextOf(command);
        const rows = await allPages<AgentRow>(await api(), "/agents", { connection: options.connection });
        out.result(rows, () => agentTable(out, rows));
      }),
    ["modelgate agents list --connection llama"],
  );
  examples(
    agents
      .command("token <connection>")
      .description("Issue an agent token for a connection; it is shown once, with the command that starts the agent")
      .requiredOption("--name <name>", "the agent's name, e.g. the GPU host")
      .action(async (connection: string, options: { name: string }, command: Command) => {
        const { out, api } = contextOf(command);
        const created = await (await api()).post<{ id: string; name: string; connection: string; token: string }>(
          `/connections/${encodeURIComponent(connection)}/agents`,
          { name: options.name },
        );
        out.result(created, () => {
          out.line(`Agent ${created.name} for ${created.connection}. Its token, shown only now:`);
          out.line();
          out.line(`  ${created.token}`);
          out.line();
          out.line(
            "Start the agent beside the runtime (it dials out to the gateways; nothing listens on the GPU host):",
          );
          out.line();
          out.line(`  MODELGATE_AGENT_TOKEN='${created.token}' \\`);
          out.line("  MODELGATE_GATEWAY_URLS=<gateway tunnel address, e.g. grpcs://gateway.internal:8443> \\");
          out.line("  MODELGATE_RUNTIME_URL=<the runtime, e.g. http://127.0.0.1:8000> \\");
          out.line("  npm start --workspace @modelgate/agent");
        });
      }),
    ["modelgate agents token llama --name gpu-1"],
  );

  const keys = program.command("keys").description("API keys for service accounts");
  examples(
    keys
      .command("list")
      .description("Every API key (prefixes only: secrets are never stored)")
      .action(async (_options, command: Command) => {
        const { out, api } = contextOf(command);
        const rows = await allPages<KeyRow>(await api(), "/api-keys");
        out.result(rows, () =>
          out.table(rows, [
            { title: "id", value: (row) => row.id },
            { title: "name", value: (row) => row.name },
            { title: "prefix", value: (row) => row.keyPrefix },
            { title: "groups", value: (row) => row.groups.join(", ") },
            { title: "status", value: (row) => row.status },
            { title: "expires", value: (row) => row.expiresAt },
            { title: "last used", value: (row) => row.lastUsedAt },
          ]),
        );
      }),
    ["modelgate keys list", "modelgate keys list --json | jq -r '.[] | select(.status == \"active\") | .id'"],
  );
  examples(
    keys
      .command("create <name>")
      .description("Create an API key; its secret is shown once")
      .requiredOption("--group <group>", "a group the key's caller belongs to (repeat for several)", repeatable)
      .option("--expires <time>", "RFC 3339 time after which the key stops working")
      .action(async (name: string, options: { group: string[]; expires?: string }, command: Command) => {
        const { out, api } = contextOf(command);
        const created = await (await api()).post<{ id: string; name: string; key: string; expiresAt: string | null }>(
          "/api-keys",
          { name, groups: options.group, ...(options.expires ? { expiresAt: options.expires } : {}) },
        );
        out.result(created, () => {
          out.line(`API key ${created.name} (${created.id}). Its secret, shown only now:`);
          out.line();
          out.line(`  ${created.key}`);
          out.line();
          out.line("Callers send it as `Authorization: Bearer <key>` to the gateway.");
        });
      }),
    ["modelgate keys create notebooks --group data-science --expires 2027-06-30T00:00:00Z"],
  );
  examples(
    keys
      .command("show <id>")
      .description("One API key: its groups, expiry and rotation (never its secret)")
      .action(async (id: string, _options, command: Command) => {
        const { out, api } = contextOf(command);
        const key = await (await api()).get<KeyRow>(`/api-keys/${encodeURIComponent(id)}`);
        out.result(key, () => {
          out.line(`${key.name} (${key.id})`);
          out.line(`status: ${key.status}`);
          out.line(`prefix: ${key.keyPrefix}`);
          out.line(`groups: ${key.groups.length > 0 ? key.groups.join(", ") : "-"}`);
          out.line(`expires: ${key.expiresAt ?? "never"}`);
          if (key.revokedAt) out.line(`revoked: ${key.revokedAt}`);
          out.line(`last used: ${key.lastUsedAt ?? "-"}`);
          out.line(`created: ${key.createdAt} by ${key.createdBy}`);
          out.line(`rotated: ${key.rotatedAt ?? "never"}`);
          if (key.previousKeyExpiresAt) out.line(`previous secret works until: ${key.previousKeyExpiresAt}`);
        });
      }),
    [
      "modelgate keys show 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f",
      "modelgate keys show 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --json",
    ],
  );
  examples(
    keys
      .command("update <id>")
      .description("Change an API key's name, groups or expiry; gateways apply it within a second")
      .option("--name <name>", "a new name")
      .option(
        "--group <group>",
        "the groups the key's caller belongs to, replacing the current ones (repeat for several)",
        repeatable,
      )
      .option("--no-groups", "remove every group")
      .option("--expires <time>", "RFC 3339 time after which the key stops working (in the future)")
      .option("--no-expiry", "the key never expires")
      .action(
        async (
          id: string,
          options: { name?: string; group?: string[]; groups: boolean; expires?: string; expiry: boolean },
          command: Command,
        ) => {
          const { out, api } = contextOf(command);
          if (options.group && !options.groups) throw new CliError("give --group or --no-groups, not both", EXIT.usage);
          if (options.expires !== undefined && !options.expiry) {
            throw new CliError("give --expires or --no-expiry, not both", EXIT.usage);
          }
          const patch = {
            ...(options.name !== undefined ? { name: options.name } : {}),
            ...(options.group ? { groups: options.group } : options.groups ? {} : { groups: [] }),
            ...(options.expires !== undefined
              ? { expiresAt: options.expires }
              : options.expiry
                ? {}
                : { expiresAt: null }),
          };
          if (Object.keys(patch).length === 0) {
            throw new CliError(
              "nothing to change: give --name, --group, --no-groups, --expires or --no-expiry",
              EXIT.usage,
            );
          }
          const key = await (await api()).patch<KeyRow>(`/api-keys/${encodeURIComponent(id)}`, patch);
          out.result(key, () => {
            out.line(`Updated API key ${key.name} (${key.id}); gateways apply it within a second.`);
            out.line(`groups: ${key.groups.length > 0 ? key.groups.join(", ") : "-"}`);
            out.line(`expires: ${key.expiresAt ?? "never"}`);
          });
        },
      ),
    [
      "modelgate keys update 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --group data-science --group ml-ops",
      "modelgate keys update 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --name notebooks-prod --expires 2027-06-30T00:00:00Z",
      "modelgate keys update 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --no-expiry",
    ],
  );
  examples(
    keys
      .command("rotate <id>")
      .description("Give an API key a new secret, shown once; the old secret keeps working for the overlap, then stops")
      .addOption(
        new Option("--overlap <duration>", "how long the old secret keeps working: 0 (stops now) up to 7d")
          .argParser(parseOverlap)
          .default(3600, "1h"),
      )
      .action(async (id: string, options: { overlap: number }, command: Command) => {
        const { out, api } = contextOf(command);
        const rotated = await (await api()).post<RotatedKey>(`/api-keys/${encodeURIComponent(id)}/rotate`, {
          overlapSeconds: options.overlap,
        });
        out.result(rotated, () => {
          out.line(`API key ${rotated.name} (${rotated.id}). Its new secret, shown only now:`);
          out.line();
          out.line(`  ${rotated.key}`);
          out.line();
          out.line(
            options.overlap > 0
              ? `The old secret keeps working until ${rotated.previousKeyExpiresAt}, then stops: move its callers to the new one before then.`
              : "The old secret stopped working now.",
          );
        });
      }),
    [
      "modelgate keys rotate 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f  # the old secret works one more hour",
      "modelgate keys rotate 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --overlap 24h --json | jq -r .key",
      "modelgate keys rotate 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --overlap 0  # leaked: every earlier secret stops now",
    ],
  );
  examples(
    keys
      .command("revoke <id>")
      .description("Revoke an API key: gateways refuse it within seconds")
      .action(async (id: string, _options, command: Command) => {
        const { out, api } = contextOf(command);
        const revoked = await (await api()).delete<KeyRow>(`/api-keys/${encodeURIComponent(id)}`);
        out.result(revoked ?? { id, status: "revoked" }, () => out.line(`Revoked API key ${id}.`));
      }),
    ["modelgate keys revoke 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f"],
  );
}

function agentTable(out: ReturnType<typeof contextOf>["out"], rows: readonly AgentRow[]): void {
  out.table(rows, [
    { title: "id", value: (row) => row.id },
    { title: "name", value: (row) => row.name },
    { title: "connection", value: (row) => row.connection },
    { title: "status", value: (row) => row.status },
    { title: "tunnel", value: (row) => row.tunnel?.state },
    { title: "in flight", value: (row) => (row.tunnel ? `${row.tunnel.inFlight}/${row.tunnel.capacity}` : undefined) },
    { title: "version", value: (row) => row.version },
    { title: "last heartbeat", value: (row) => row.tunnel?.lastHeartbeatAt ?? row.lastSeenAt },
  ]);
}
