// The `modelgate` CLI as a process, against the real control plane process
// (its own Postgres database, audit records through its Redis queue).
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { type AuditQueue, type AuditRecord, createAuditQueue } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import { type ControlPlane, cli, REDIS_URL, startControlPlane } from "./control-plane.js";

/** A test that starts the CLI a dozen times or more: about a second a process on a busy 2-core machine. */
const MANY_RUNS_MS = 60_000;

describe("modelgate CLI", () => {
  let cp: ControlPlane;
  let configDir: string;
  /** The environment of a logged-in CLI: only its config directory. */
  let env: Record<string, string>;
  const run = (args: readonly string[], input = "") => cli(args, env, input);
  const json = async <T>(args: readonly string[]): Promise<T> => {
    const result = await run([...args, "--json"]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    return JSON.parse(result.stdout) as T;
  };

  beforeAll(async () => {
    // Exporters may deliver to this machine (the test's receiver).
    cp = await startControlPlane({ MODELGATE_EXPORT_ALLOW_CIDRS: "127.0.0.1/32" });
    configDir = await mkdtemp(path.join(os.tmpdir(), "modelgate-cli-"));
    env = { MODELGATE_CONFIG_DIR: path.join(configDir, "config") };
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await rm(configDir, { recursive: true, force: true });
  });

  describe("login", () => {
    it("refuses a token the control plane refuses, and saves nothing", async () => {
      const refused = await run(["login", "--url", cp.url, "--token-stdin"], "mgadmin_wrong\n");
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/refused the credential.*modelgate login/);
      await expect(stat(path.join(env.MODELGATE_CONFIG_DIR as string, "credentials.json"))).rejects.toThrow();
      const notLoggedIn = await run(["status"]);
      expect(notLoggedIn.code).toBe(3);
      expect(notLoggedIn.stderr).toContain("not logged in: run `modelgate login --url");
    });

    it("saves an accepted token where only its owner can read it", async () => {
      const login = await run(["login", "--url", `${cp.url}/`, "--token-stdin"], `${cp.adminToken}\n`);
      expect(login.code).toBe(0);
      expect(login.stdout).toContain(`Logged in to ${cp.url}`);
      expect(login.stdout).not.toContain(cp.adminToken);
      const file = path.join(env.MODELGATE_CONFIG_DIR as string, "credentials.json");
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(env.MODELGATE_CONFIG_DIR as string)).mode & 0o777).toBe(0o700);
      expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ url: cp.url, token: cp.adminToken });
    });

    it("refuses a credentials file others can read", async () => {
      const file = path.join(env.MODELGATE_CONFIG_DIR as string, "credentials.json");
      const { chmod } = await import("node:fs/promises");
      await chmod(file, 0o644);
      const refused = await run(["status"]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain("can be read by other users");
      await chmod(file, 0o600);
    });

    it("never sends the saved token to another URL, nor any token over plain http to another host", async () => {
      const elsewhere = await run(["--url", "http://127.0.0.1:9", "status"]);
      expect(elsewhere.code).toBe(3);
      expect(elsewhere.stderr).toContain(`the saved credentials are for ${cp.url}`);
      const plain = await run(["login", "--url", "http://modelgate.example.com", "--token-stdin"], "mgadmin_x\n");
      expect(plain.code).toBe(2);
      expect(plain.stderr).toContain("plain http");
    });

    it("takes MODELGATE_URL and MODELGATE_TOKEN over the file, for scripts", async () => {
      const other = await cli(["status"], { ...env, MODELGATE_URL: cp.url, MODELGATE_TOKEN: "mgadmin_not-this-one" });
      expect(other.code).toBe(3);
      const good = await cli(["status", "--json"], { MODELGATE_URL: cp.url, MODELGATE_TOKEN: cp.adminToken });
      expect(good.code).toBe(0);
    });
  });

  describe("connections, agents and keys", () => {
    it("creates, lists and shows a connection; names the problem when it cannot", async () => {
      const created = await run(["connections", "create", "llama", "--protocol", "openai", "--model", "llama-3.1-8b"]);
      expect(created.code).toBe(0);
      expect(created.stdout).toContain("modelgate agents token llama --name");
      expect(await json<{ name: string; models: string[] }[]>(["connections", "list"])).toEqual([
        expect.objectContaining({ name: "llama", protocol: "openai", models: ["llama-3.1-8b"] }),
      ]);
      const again = await run(["connections", "create", "llama", "--protocol", "openai", "--model", "x"]);
      expect(again.code).toBe(5);
      const invalid = await run(["connections", "create", "bad", "--protocol", "smoke-signals", "--model", "x"]);
      expect(invalid.code).toBe(2);
      expect(invalid.stderr).toMatch(/protocol/);
      const missing = await run(["connections", "show", "nowhere"]);
      expect(missing.code).toBe(4);
      const usage = await run(["connections", "create", "llama2"]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain("--protocol");
    });

    it("issues an agent token once, with the command that starts the agent", async () => {
      const issued = await run(["agents", "token", "llama", "--name", "gpu-1"]);
      expect(issued.code).toBe(0);
      const token = issued.stdout.match(/mgagent_[A-Za-z0-9_-]+/)?.[0];
      expect(token).toBeDefined();
      expect(issued.stdout).toContain(`MODELGATE_AGENT_TOKEN='${token}'`);
      const agents = await json<{ name: string; connection: string; status: string }[]>(["agents", "list"]);
      expect(agents).toEqual([expect.objectContaining({ name: "gpu-1", connection: "llama", status: "active" })]);
      // Never shown again.
      expect((await run(["agents", "list"])).stdout).not.toContain(token);
      const shown = await run(["connections", "show", "llama"]);
      expect(shown.stdout).toContain("gpu-1");
    });

    it("creates, lists and revokes an API key", async () => {
      const created = await json<{ id: string; key: string }>(["keys", "create", "notebooks", "--group", "ds"]);
      expect(created.key).toMatch(/^mg_/);
      const listed = await json<{ id: string; status: string; keyPrefix: string }[]>(["keys", "list"]);
      expect(listed).toEqual([expect.objectContaining({ id: created.id, status: "active" })]);
      expect(JSON.stringify(listed)).not.toContain(created.key);
      expect((await run(["keys", "revoke", created.id])).code).toBe(0);
      expect(await json<{ status: string }[]>(["keys", "list"])).toEqual([
        expect.objectContaining({ id: created.id, status: "revoked" }),
      ]);
      expect((await run(["keys", "revoke", "01900000-0000-7000-8000-000000000000"])).code).toBe(4);
    });

    it(
      "shows, updates and rotates an API key, the new secret printed once",
      async () => {
        const created = await json<{ id: string; key: string }>(["keys", "create", "ci", "--group", "ds"]);
        const shown = await run(["keys", "show", created.id]);
        expect(shown.code).toBe(0);
        expect(shown.stdout).toContain(`ci (${created.id})`);
        expect(shown.stdout).toContain("groups: ds");
        expect(shown.stdout).toContain("rotated: never");
        expect(shown.stdout).not.toContain(created.key);

        const updated = await json<{ name: string; groups: string[]; expiresAt: string | null }>([
          "keys",
          "update",
          created.id,
          "--name",
          "ci-prod",
          "--group",
          "ds",
          "--group",
          "Okta, Group",
          "--expires",
          "2999-01-01T00:00:00Z",
        ]);
        expect(updated).toMatchObject({
          name: "ci-prod",
          groups: ["ds", "Okta, Group"],
          expiresAt: "2999-01-01T00:00:00.000Z",
        });
        const cleared = await run(["keys", "update", created.id, "--no-groups", "--no-expiry"]);
        expect(cleared.code).toBe(0);
        expect(cleared.stdout).toContain("groups: -");
        expect(cleared.stdout).toContain("expires: never");
        expect(
          await json<{ name: string; groups: string[]; expiresAt: null }>(["keys", "show", created.id]),
        ).toMatchObject({ name: "ci-prod", groups: [], expiresAt: null });

        const rotated = await run(["keys", "rotate", created.id, "--overlap", "30m"]);
        expect(rotated.code).toBe(0);
        const secret = rotated.stdout.match(/mg_[0-9A-Za-z]{32}/)?.[0] as string;
        expect(secret).not.toBe(created.key);
        expect(rotated.stdout).toMatch(/old secret keeps working until \S+Z, then stops/);
        const view = await json<{ keyPrefix: string; rotatedAt: string; previousKeyExpiresAt: string }>([
          "keys",
          "show",
          created.id,
        ]);
        expect(view.keyPrefix).toBe(secret.slice(0, 7));
        expect(Date.parse(view.previousKeyExpiresAt) - Date.parse(view.rotatedAt)).toBe(30 * 60_000);
        expect(JSON.stringify(view)).not.toContain(secret);
        expect((await run(["keys", "show", created.id])).stdout).toContain(
          `previous secret works until: ${view.previousKeyExpiresAt}`,
        );

        // During the overlap only a rotation that stops every earlier secret is accepted.
        const again = await run(["keys", "rotate", created.id]);
        expect(again.code).toBe(5);
        expect(again.stderr).toContain("in progress until");
        const now = await json<{ key: string; rotatedAt: string; previousKeyExpiresAt: string }>([
          "keys",
          "rotate",
          created.id,
          "--overlap",
          "0",
        ]);
        expect(now.key).toMatch(/^mg_/);
        expect(now.previousKeyExpiresAt).toBe(now.rotatedAt);
        expect((await run(["keys", "show", created.id])).stdout).not.toContain("previous secret");
      },
      MANY_RUNS_MS,
    );

    it(
      "names the problem with key updates and rotations, with the documented exit codes",
      async () => {
        const { id } = await json<{ id: string }>(["keys", "create", "strict", "--group", "ds"]);
        const nothing = await run(["keys", "update", id]);
        expect(nothing.code).toBe(2);
        expect(nothing.stderr).toContain("nothing to change");
        expect((await run(["keys", "update", id, "--expires", "2999-01-01T00:00:00Z", "--no-expiry"])).code).toBe(2);
        expect((await run(["keys", "update", id, "--group", "a", "--no-groups"])).code).toBe(2);
        const past = await run(["keys", "update", id, "--expires", "2020-01-01T00:00:00Z"]);
        expect(past.code).toBe(2);
        expect(past.stderr).toContain("body.expiresAt: must be in the future");
        for (const overlap of ["8d", "1x", "-1", "1.5h", ""]) {
          const bad = await run(["keys", "rotate", id, "--overlap", overlap]);
          expect({ overlap, code: bad.code }).toEqual({ overlap, code: 2 });
          expect(bad.stderr).toContain("--overlap must be a duration");
        }
        const missing = "01900000-0000-7000-8000-000000000000";
        expect((await run(["keys", "show", missing])).code).toBe(4);
        expect((await run(["keys", "update", missing, "--name", "x"])).code).toBe(4);
        expect((await run(["keys", "rotate", missing])).code).toBe(4);
        expect((await run(["keys", "revoke", id])).code).toBe(0);
        const revoked = await run(["keys", "update", id, "--name", "x"]);
        expect(revoked.code).toBe(5);
        expect(revoked.stderr).toContain("revoked");
        expect((await run(["keys", "rotate", id, "--overlap", "0"])).code).toBe(5);
        const help = await run(["keys", "rotate", "--help"]);
        expect(help.stdout).toContain("--overlap 0");
        expect(help.stdout).toContain("(default: 1h)");
      },
      MANY_RUNS_MS,
    );

    it("shows the status: connections with their agents", async () => {
      const status = await json<{ connections: { connection: string; agents: number }[]; pendingApprovals: number }>([
        "status",
      ]);
      expect(status.connections).toEqual([expect.objectContaining({ connection: "llama", agents: 1, agentsUp: 0 })]);
      expect(status.pendingApprovals).toBe(0);
    });
  });

  describe("policies apply", () => {
    const policy = {
      name: "ds-llama",
      subjects: { groups: ["ds"] },
      resources: [{ connection: "llama", models: ["llama-3.1-8b*"] }],
      operations: ["inference"],
    };
    let file: string;
    beforeAll(async () => {
      file = path.join(configDir, "policies.json");
    });
    const revision = async () =>
      (await json<{ name: string; revision: number }[]>(["policies", "list"])).find((row) => row.name === "ds-llama")
        ?.revision;

    it("creates, then changes nothing when applied again, and says so", async () => {
      await writeFile(file, JSON.stringify({ policies: [policy] }));
      const first = await run(["policies", "apply", "-f", file]);
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/created\s+ds-llama/);
      const before = await revision();
      const second = await run(["policies", "apply", "-f", file]);
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/unchanged\s+ds-llama/);
      expect(second.stdout).toContain("Nothing to change");
      expect(await revision()).toBe(before);
      // What `get` prints applies as it is: still nothing to change.
      const got = await run(["policies", "get", "ds-llama"]);
      await writeFile(file, got.stdout);
      expect(await json<{ action: string }[]>(["policies", "diff", "-f", file])).toEqual([
        expect.objectContaining({ name: "ds-llama", action: "unchanged" }),
      ]);
    });

    it("shows a change before applying it, then applies only that", async () => {
      await writeFile(file, JSON.stringify([{ ...policy, operations: ["inference", "embeddings"] }]));
      const before = await revision();
      const diff = await run(["policies", "diff", "-f", file]);
      expect(diff.code).toBe(0);
      expect(diff.stdout).toMatch(
        /would update\s+ds-llama\n\s+operations:\n\s+- \["inference"\]\n\s+\+ \["inference","embeddings"\]/,
      );
      expect(await revision()).toBe(before);
      const applied = await json<{ action: string; fields: { field: string }[] }[]>(["policies", "apply", "-f", file]);
      expect(applied).toEqual([
        expect.objectContaining({ action: "update", fields: [expect.objectContaining({ field: "operations" })] }),
      ]);
      expect(await revision()).toBe((before as number) + 1);
    });

    it("shows that a field the file leaves out is removed, and does not call it unchanged", async () => {
      await writeFile(
        file,
        JSON.stringify([
          { ...policy, operations: ["inference", "embeddings"], masking: { entities: ["EMAIL"] }, description: "ds" },
        ]),
      );
      expect(await json<{ action: string }[]>(["policies", "apply", "-f", file])).toEqual([
        expect.objectContaining({ action: "update" }),
      ]);
      // The same policy without masking or description: both would go, and the plan says so.
      await writeFile(file, JSON.stringify([{ ...policy, operations: ["inference", "embeddings"] }]));
      const plan = await json<{ action: string; fields: { field: string; desired: unknown }[] }[]>([
        "policies",
        "diff",
        "-f",
        file,
      ]);
      expect(plan[0]?.action).toBe("update");
      expect(plan[0]?.fields.map((field) => field.field).sort()).toEqual(["description", "masking"]);
      expect(plan[0]?.fields.every((field) => field.desired === null)).toBe(true);
      await run(["policies", "apply", "-f", file]);
      expect(await json<{ action: string }[]>(["policies", "diff", "-f", file])).toEqual([
        expect.objectContaining({ action: "unchanged" }),
      ]);
    });

    it("refuses an invalid file as a whole, naming each problem, and changes nothing", async () => {
      const before = await revision();
      await writeFile(
        file,
        JSON.stringify([
          { ...policy, operations: ["teleport"] },
          { ...policy, name: "another", subjects: {} },
        ]),
      );
      const refused = await run(["policies", "apply", "-f", file]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("nothing was changed");
      expect(refused.stderr).toMatch(/policies\[0\]\.operations/);
      expect(await revision()).toBe(before);
      expect((await json<{ name: string }[]>(["policies", "list"])).map((row) => row.name)).toEqual(["ds-llama"]);
      await writeFile(file, "{ not json");
      expect((await run(["policies", "apply", "-f", file])).code).toBe(2);
      expect((await run(["policies", "apply", "-f", path.join(configDir, "missing.json")])).code).toBe(2);
    });

    it("evaluates a request without sending it", async () => {
      const allowed = await json<{ decision: string }>([
        "policies",
        "eval",
        "--group",
        "ds",
        "--connection",
        "llama",
        "--model",
        "llama-3.1-8b-instruct",
      ]);
      expect(allowed.decision).toBe("allowed");
      const denied = await json<{ decision: string }>(["policies", "eval", "--group", "ops", "--connection", "llama"]);
      expect(denied.decision).toBe("denied");
    });
  });

  describe("sessions and the audit chain", () => {
    let producer: AuditQueue;
    const hostile = uuidv7();
    const streamed: AuditRecord = {
      version: 1,
      sessionId: uuidv7(),
      gatewayId: "gw-1",
      receivedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      subject: { id: "alice", email: "alice@example.com", groups: ["ds"], authMethod: "oidc" },
      connection: "llama",
      model: "llama-3.1-8b",
      endpoint: "/v1/chat/completions",
      method: "POST",
      decision: "allowed",
      policyIds: [],
      capped: [],
      responseStatus: 200,
      latencyMs: 420,
      request: {
        text: '{"messages":[{"role":"user","content":"the quarterly report?"}]}',
        truncated: false,
        bytes: 60,
      },
      responseContentType: "text/event-stream",
      response: { text: "", truncated: false, bytes: 0 },
      events: [0, 150, 300, 400].map((offsetMs, index) => ({
        offsetMs,
        data: `data: {"choices":[{"delta":{"content":"${["Revenue ", "rose ", "four ", "percent."][index]}"}}]}\n\n`,
      })),
    };
    streamed.response = {
      text: streamed.events.map((event) => event.data).join(""),
      truncated: false,
      bytes: 0,
    };

    beforeAll(async () => {
      producer = createAuditQueue({ connection: REDIS_URL, prefix: cp.auditPrefix });
      await producer.enqueue(streamed);
      // Two more, answered whole, so that the chain has parts to walk; one
      // names a model with terminal control sequences (a caller chooses it).
      for (const [index, text] of ["first", "second"].entries()) {
        await producer.enqueue({
          ...streamed,
          sessionId: index === 0 ? hostile : uuidv7(),
          model: index === 0 ? "evil\u001b]0;owned\u0007\u001b[2J" : streamed.model,
          responseContentType: "application/json",
          response: { text: `{"choices":[{"message":{"content":"${text}"}}]}`, truncated: false, bytes: 40 },
          events: [],
        });
      }
      const deadline = Date.now() + 15_000;
      for (;;) {
        const result = await run(["sessions", "list", "--json"]);
        if (result.code === 0 && (JSON.parse(result.stdout) as { items: unknown[] }).items.length === 3) break;
        if (Date.now() > deadline) throw new Error("the session was not stored");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
    afterAll(async () => {
      await producer.close();
    });

    it("lists and finds sessions, and shows one", async () => {
      const listed = await run(["sessions", "list", "--user", "alice@example.com"]);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(streamed.sessionId);
      expect(listed.stdout.trim().split("\n")).toHaveLength(4);
      expect(listed.stdout).toContain("alice@example.com");
      const byText = await json<{ items: { id: string }[] }>(["sessions", "list", "-q", "four percent"]);
      expect(byText.items.map((item) => item.id)).toEqual([streamed.sessionId]);
      const none = await json<{ items: unknown[] }>(["sessions", "list", "--decision", "blocked"]);
      expect(none.items).toEqual([]);
      const shown = await run(["sessions", "show", streamed.sessionId]);
      expect(shown.stdout).toContain("the quarterly report?");
      expect(shown.stdout).toContain("alice@example.com");
      expect((await run(["sessions", "show", uuidv7()])).code).toBe(4);
      // What a caller chose reaches the auditor's terminal escaped, in every form of output.
      for (const args of [
        ["sessions", "show", hostile],
        ["sessions", "list"],
        ["sessions", "list", "--json"],
      ]) {
        const printed = await run(args);
        expect(printed.stdout).toContain("evil");
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not get through
        expect(printed.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      }
      expect((await run(["sessions", "list", "--limit", "0"])).code).toBe(2);
    });

    it("replays the answer's text at the pace it was delivered", async () => {
      const replay = await run(["sessions", "replay", streamed.sessionId]);
      expect(replay.code).toBe(0);
      expect(replay.stdout).toBe("Revenue rose four percent.\n");
      // The last chunk went out 400 ms after the request was received.
      expect(replay.elapsedMs).toBeGreaterThanOrEqual(400);
      const fast = await run(["sessions", "replay", streamed.sessionId, "--speed", "0"]);
      expect(fast.stdout).toBe("Revenue rose four percent.\n");
      expect((await run(["sessions", "replay", streamed.sessionId, "--speed", "-1"])).code).toBe(2);
    });

    it("verifies the audit chain, in parts with progress", async () => {
      const verified = await run(["audit", "verify"]);
      expect(verified.code).toBe(0);
      expect(verified.stdout).toContain("OK: 3 sessions verified, last chain sequence 3.");
      const inParts = await run(["audit", "verify", "--part", "1"]);
      expect(inParts.code).toBe(0);
      expect(inParts.stderr).toContain("verified 1 of 3 sessions (33 %)");
      expect(inParts.stderr).toContain("verified 2 of 3 sessions (66 %)");
      expect(inParts.stdout).toContain("OK: 3 sessions verified");
      expect(await json<{ status: string; checked: number }>(["audit", "verify", "--part", "2"])).toMatchObject({
        status: "ok",
        checked: 3,
        complete: true,
      });
      expect((await run(["audit", "verify", "--part", "0"])).code).toBe(2);
    });

    it("lists approvals; deciding one that does not exist says so", async () => {
      expect(await json<{ items: unknown[] }>(["approvals", "list"])).toEqual({ items: [], nextCursor: null });
      const unknown = await run(["approvals", "approve", "01900000-0000-7000-8000-000000000000", "--comment", "ok"]);
      expect(unknown.code).toBe(4);
    });
  });

  it("tests an exporter: delivered, or not and why", async () => {
    const received: string[] = [];
    let answer = 204;
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += String(chunk);
      });
      req.on("end", () => {
        received.push(body);
        res.writeHead(answer).end();
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    try {
      const { port } = receiver.address() as AddressInfo;
      const created = await fetch(`${cp.url}/api/v1/exporters`, {
        method: "POST",
        headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          name: "siem",
          kind: "webhook",
          url: `http://127.0.0.1:${port}/events`,
          types: ["session"],
        }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      const delivered = await run(["exporters", "test", id]);
      expect(delivered.code).toBe(0);
      expect(delivered.stdout).toMatch(/^Delivered \(event /);
      expect(received).toHaveLength(1);
      answer = 500;
      const failed = await run(["exporters", "test", id]);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toContain("Not delivered:");
      expect((await run(["exporters", "test", "01900000-0000-7000-8000-000000000000"])).code).toBe(4);
    } finally {
      receiver.close();
    }
  });

  it("logs out", async () => {
    expect((await run(["logout"])).stdout).toContain("Logged out.");
    expect((await run(["status"])).code).toBe(3);
    expect((await run(["logout"])).stdout).toContain("Not logged in");
  });
});
