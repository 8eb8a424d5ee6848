// login, logout, status.
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { createApiClient } from "../api.js";
import { allPages, contextOf, examples } from "../context.js";
import { normalizeUrl, removeCredentials, saveCredentials } from "../credentials.js";
import { type CliLogin, deviceLogin } from "../device-login.js";
import { CliError, EXIT } from "../errors.js";

interface CliLoginInfo {
  oidc: CliLogin | null;
}

/** The token from standard input: its first line (piped), or typed without echo (a terminal). */
async function readToken(): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) {
    let text = "";
    for await (const chunk of input) {
      text += String(chunk);
      if (text.includes("\n") || text.length > 16_384) break;
    }
    return (text.split("\n")[0] ?? "").trim();
  }
  process.stderr.write("Token: ");
  const reader = createInterface({ input, terminal: true });
  // Nothing typed is echoed: the token must not stay on the screen.
  (reader as unknown as { _writeToOutput: () => void })._writeToOutput = () => undefined;
  const token = await new Promise<string>((resolve) => reader.once("line", resolve));
  reader.close();
  process.stderr.write("\n");
  return token.trim();
}

export function registerAuth(program: Command): void {
  examples(
    program
      .command("login")
      .description(
        "Save the control plane's URL and a credential (the admin token, or an OIDC access token) for the other commands",
      )
      .option(
        "--token-stdin",
        "read a token from standard input (the admin token, or an access token); without it, sign in at the identity provider when the control plane names one, else type the token",
      )
      .action(async (options: { tokenStdin?: boolean }, command: Command) => {
        const { out, globals } = contextOf(command);
        const rawUrl = globals.url ?? process.env.MODELGATE_URL;
        if (!rawUrl)
          throw new CliError("say which control plane: --url http://host:port (or MODELGATE_URL)", EXIT.usage);
        const url = normalizeUrl(rawUrl);
        const oidc = options.tokenStdin
          ? null
          : (await createApiClient(url, "").public<CliLoginInfo>("/cli-login")).oidc;
        const token = oidc ? await deviceLogin(oidc, out.note) : await readToken();
        if (token === "") throw new CliError("no token given", EXIT.usage);
        // Saved only once the control plane has accepted it: a person
        // without the admin role (403 here) is still signed in.
        try {
          await createApiClient(url, token).get("/connections", { limit: 1 });
        } catch (error) {
          if (!(error instanceof CliError && error.status === 403)) throw error;
        }
        const file = await saveCredentials({ url, token });
        out.result({ url, credentials: file }, () =>
          out.line(`Logged in to ${url}; credentials saved in ${file} (0600).`),
        );
      }),
    [
      "modelgate login --url https://modelgate.internal   # signs in at the identity provider, or asks for the token",
      'echo "$ADMIN_TOKEN" | modelgate login --url https://modelgate.internal --token-stdin',
    ],
  );

  examples(
    program
      .command("logout")
      .description("Forget the saved credentials")
      .action(async (_options, command: Command) => {
        const { out } = contextOf(command);
        const removed = await removeCredentials();
        out.result({ removed }, () => out.line(removed ? "Logged out." : "Not logged in; nothing to forget."));
      }),
    ["modelgate logout"],
  );

  examples(
    program
      .command("status")
      .description("The control plane's connections, their agents and the approvals waiting")
      .action(async (_options, command: Command) => {
        const { out, api: client } = contextOf(command);
        const api = await client();
        const [connections, agents, pending] = await Promise.all([
          allPages<{ name: string; protocol: string; models: string[] }>(api, "/connections"),
          allPages<AgentRow>(api, "/agents"),
          allPages<{ id: string }>(api, "/approvals", { status: "pending" }).catch((error: unknown) => {
            // Approvals are for approvers and admins; the rest of the status is still worth showing.
            if (error instanceof CliError && error.exitCode === EXIT.auth) return undefined;
            throw error;
          }),
        ]);
        const rows = connections.map((connection) => {
          const own = agents.filter((agent) => agent.connection === connection.name && agent.status === "active");
          return {
            connection: connection.name,
            protocol: connection.protocol,
            models: connection.models.length,
            agentsUp: own.filter((agent) => agent.tunnel?.state === "connected").length,
            agents: own.length,
            inFlight: own.reduce((sum, agent) => sum + (agent.tunnel?.inFlight ?? 0), 0),
          };
        });
        const status = { url: api.url, connections: rows, pendingApprovals: pending?.length ?? null };
        out.result(status, () => {
          out.line(`Control plane ${api.url}`);
          out.line(
            `Pending approvals: ${pending === undefined ? "- (this credential cannot read approvals)" : pending.length}`,
          );
          out.line();
          out.table(rows, [
            { title: "connection", value: (row) => row.connection },
            { title: "protocol", value: (row) => row.protocol },
            { title: "models", value: (row) => row.models },
            { title: "agents up", value: (row) => `${row.agentsUp}/${row.agents}` },
            { title: "in flight", value: (row) => row.inFlight },
          ]);
        });
      }),
    ["modelgate status", "modelgate status --json | jq '.connections[] | select(.agentsUp == 0)'"],
  );
}

export interface AgentRow {
  id: string;
  name: string;
  connection: string;
  status: "active" | "revoked";
  version: string | null;
  lastSeenAt: string | null;
  tunnel: { state: string; inFlight: number; capacity: number; lastHeartbeatAt: string | null } | null;
}
