// `modelgate login` against a control plane that names an identity provider:
// the person signs in there (OAuth device authorization grant, a real
// oidc-provider), never typing a secret into the terminal, and the CLI then
// acts with the roles their groups give them.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import { type ControlPlane, cli, startControlPlane } from "./control-plane.js";

const CLI = fileURLToPath(new URL("../bin/modelgate.mjs", import.meta.url));

describe("modelgate login with the identity provider", () => {
  let idp: TestIdentityProvider;
  let cp: ControlPlane;
  let home: string;

  beforeAll(async () => {
    idp = await startTestIdentityProvider({ deviceClientId: "modelgate-cli" });
    cp = await startControlPlane({
      OIDC_ISSUER: idp.issuer,
      OIDC_AUDIENCE: idp.audience,
      OIDC_ALLOW_INSECURE_HTTP: "true",
      MODELGATE_ADMIN_GROUPS: "platform",
      MODELGATE_CLI_CLIENT_ID: "modelgate-cli",
    });
    home = await mkdtemp(path.join(os.tmpdir(), "modelgate-cli-device-"));
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await idp?.close();
    await rm(home, { recursive: true, force: true });
  });

  /**
   * Runs `modelgate login`, waits for the page it asks the person to open,
   * signs in there as `user` (as their browser would), and resolves with the
   * CLI's exit code and output.
   */
  async function deviceLogin(env: Record<string, string>, user: Parameters<TestIdentityProvider["approveDevice"]>[1]) {
    const child = spawn(process.execPath, [CLI, "login", "--url", cp.url], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin.end();
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += String(chunk);
    });
    const page = new Promise<string>((resolve) => {
      child.stderr.on("data", (chunk) => {
        stderr += String(chunk);
        const url = stderr.match(/open (\S+)/)?.[1];
        if (url) resolve(url);
      });
    });
    const closed = once(child, "close") as Promise<[number | null]>;
    const url = await Promise.race([page, closed.then(() => Promise.reject(new Error(`login ended: ${stderr}`)))]);
    await idp.approveDevice(url, user);
    const [code] = await closed;
    return { code, stdout, stderr };
  }

  it("tells the CLI where people sign in, without a credential", async () => {
    const answer = await fetch(`${cp.url}/api/v1/cli-login`);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ oidc: { issuer: idp.issuer, clientId: "modelgate-cli", scope: "openid" } });
  });

  it("signs an admin in at the identity provider; the CLI then acts as them", async () => {
    const env = { MODELGATE_CONFIG_DIR: path.join(home, "alice") };
    const login = await deviceLogin(env, { subject: "alice", email: "alice@example.com", groups: ["platform"] });
    expect(login.code).toBe(0);
    expect(login.stderr).toMatch(/check that it shows the code [A-Z]{4}-?[A-Z]{4}/);
    expect(login.stdout).toContain(`Logged in to ${cp.url}`);
    expect((await stat(path.join(env.MODELGATE_CONFIG_DIR, "credentials.json"))).mode & 0o777).toBe(0o600);
    const created = await cli(["connections", "create", "llama", "--protocol", "openai", "--model", "m"], env);
    expect(created.code).toBe(0);
    // The admin audit log names the person, not a shared token.
    const audit = await fetch(`${cp.url}/api/v1/admin-audit-log`, {
      headers: { authorization: `Bearer ${cp.adminToken}` },
    });
    const entries = ((await audit.json()) as { items: { actor: unknown }[] }).items;
    expect(JSON.stringify(entries[0]?.actor)).toContain("alice");
  });

  it("signs in a person without a role, whom the API then refuses what needs one", async () => {
    const env = { MODELGATE_CONFIG_DIR: path.join(home, "bob") };
    const login = await deviceLogin(env, { subject: "bob", email: "bob@example.com", groups: ["interns"] });
    expect(login.code).toBe(0);
    const refused = await cli(["connections", "list"], env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("not allowed: this operation needs the admin");
  });

  it("still takes a token from standard input when asked to", async () => {
    const env = { MODELGATE_CONFIG_DIR: path.join(home, "token") };
    const login = await cli(["login", "--url", cp.url, "--token-stdin"], env, `${cp.adminToken}\n`);
    expect(login.code).toBe(0);
    expect(login.stderr).not.toContain("open");
  });
});
