import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect } from "node:net";
import { withDatabase } from "@modelgate/db/testing";
import { MAX_BODY_BYTES } from "../src/app.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

describe("control-plane HTTP behaviour", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  describe("authentication", () => {
    it.each([
      ["no Authorization header", null],
      ["a wrong token", "mgadmin_wrong"],
      ["a token that differs only in its last character", "SAME_BUT_LAST"],
    ])("refuses %s with 401 and a WWW-Authenticate challenge", async (_case, token) => {
      // A last character that surely differs: a random token may end in "x" itself.
      const other = cp.adminToken.endsWith("x") ? "y" : "x";
      const presented = token === "SAME_BUT_LAST" ? `${cp.adminToken.slice(0, -1)}${other}` : token;
      const response = await api("GET", "/api/v1/connections", { token: presented });
      expectProblem(response, 401, "unauthenticated");
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
    });

    it.each([
      ["the same token twice", ["TOKEN", "TOKEN"]],
      ["the right token and a wrong one", ["TOKEN", "mgadmin_wrong"]],
      ["a wrong token and the right one", ["mgadmin_wrong", "TOKEN"]],
    ])("refuses two Authorization headers (%s) with 400, whichever comes first", async (_case, tokens) => {
      // fetch would merge the two headers into one; a raw socket sends them as they are.
      const socket = connect(Number(new URL(cp.url).port), "127.0.0.1");
      await once(socket, "connect");
      let answer = "";
      socket.on("data", (chunk) => {
        answer += String(chunk);
      });
      const headers = tokens.map((token) => `authorization: Bearer ${token.replace("TOKEN", cp.adminToken)}\r\n`);
      socket.write(`GET /api/v1/connections HTTP/1.1\r\nhost: cp\r\n${headers.join("")}connection: close\r\n\r\n`);
      await once(socket, "close");
      expect(answer.split("\r\n", 1)[0]).toBe("HTTP/1.1 400 Bad Request");
      expect(answer).toContain('"code":"invalid_request"');
      expect(answer).not.toContain(cp.adminToken);
    });

    it.each([
      ["Basic credentials", "Basic YWRtaW46YWRtaW4="],
      ["a bare token without the Bearer scheme", "TOKEN"],
      ["a header of 10,000 characters", `Bearer ${"a".repeat(10_000)}`],
      ["the right token followed by another word", "TOKEN extra"],
    ])("refuses %s", async (_case, header) => {
      const value = header.replace("TOKEN", cp.adminToken);
      const response = await fetch(`${cp.url}/api/v1/connections`, { headers: { authorization: value } });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { code: string }).code).toBe("unauthenticated");
    });

    it("authenticates before reading or validating anything, so anonymous callers learn nothing", async () => {
      expectProblem(
        await api("POST", "/api/v1/connections", { token: null, body: { name: "BAD" } }),
        401,
        "unauthenticated",
      );
      expectProblem(await api("POST", "/api/v1/connections", { token: null, rawBody: "{" }), 401, "unauthenticated");
      const huge = `{"description":"${"x".repeat(MAX_BODY_BYTES + 10)}"}`;
      expectProblem(await api("POST", "/api/v1/connections", { token: null, rawBody: huge }), 401, "unauthenticated");
      expectProblem(await api("GET", "/api/v1/connections/%ZZ", { token: null }), 401, "unauthenticated");
      expectProblem(await api("GET", "/api/v1/no-such-route", { token: null }), 401, "unauthenticated");
    });

    it("requires authentication on every documented operation", async () => {
      const document = (await api("GET", "/api/v1/openapi.json", { token: null })).body;
      const operations = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(
        ([path, item]) => Object.keys(item).map((method) => ({ method: method.toUpperCase(), path })),
      );
      expect(operations.length).toBeGreaterThanOrEqual(11);
      for (const { method, path } of operations) {
        const concrete = path.replace("{name}", "llama").replace("{id}", "0190a5f0-0000-7000-8000-000000000000");
        const response = await api(method, concrete, { token: null, body: method === "GET" ? undefined : {} });
        expect({ method, path, status: response.status }).toEqual({ method, path, status: 401 });
      }
    });
  });

  describe("request bodies", () => {
    it("answers malformed JSON with 400 malformed_json", async () => {
      const response = await api("POST", "/api/v1/connections", { rawBody: '{"name": "x",' });
      expectProblem(response, 400, "malformed_json");
      expect(response.text).not.toMatch(/at .*\.js|<html|SyntaxError/);
    });

    it("answers a body over 1 MiB with 413 and stores nothing", async () => {
      const huge = JSON.stringify({
        name: "big",
        protocol: "openai",
        models: ["m"],
        description: "x".repeat(MAX_BODY_BYTES),
      });
      const response = await api("POST", "/api/v1/connections", { rawBody: huge });
      expectProblem(response, 413, "payload_too_large");
      expect(await cp.db.connection.count({ where: { name: "big" } })).toBe(0);
    });

    it("answers a body that is not JSON with 415", async () => {
      const response = await api("POST", "/api/v1/connections", {
        rawBody: "name=x&protocol=openai",
        contentType: "application/x-www-form-urlencoded",
      });
      expectProblem(response, 415, "unsupported_media_type");
    });

    it("answers a PATCH body that is not JSON with 415 and leaves the connection alone", async () => {
      await api("POST", "/api/v1/connections", { body: { name: "form", protocol: "openai", models: ["m"] } });
      const response = await api("PATCH", "/api/v1/connections/form", {
        rawBody: "models=x",
        contentType: "text/plain",
      });
      expectProblem(response, 415, "unsupported_media_type");
      expect((await api("GET", "/api/v1/connections/form")).body.models).toEqual(["m"]);
    });

    it("answers a body with broken compression as the client's error, not the server's", async () => {
      const response = await fetch(`${cp.url}/api/v1/connections`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${cp.adminToken}`,
          "content-type": "application/json",
          "content-encoding": "gzip",
        },
        body: '{"name":"x"}',
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe("invalid_request");
    });

    it("answers a JSON scalar with 400", async () => {
      expectProblem(await api("POST", "/api/v1/connections", { rawBody: '"llama"' }), 400, "malformed_json");
    });
  });

  describe("admin audit log", () => {
    it("rejects a cursor that is not an entry id", async () => {
      expectProblem(await api("GET", "/api/v1/admin-audit-log?cursor=abc"), 400, "invalid_request");
      expectProblem(await api("GET", "/api/v1/admin-audit-log?cursor=99999999999999999999"), 400, "invalid_request");
      expectProblem(await api("GET", "/api/v1/admin-audit-log?cursor=9999999999999999999"), 400, "invalid_request");
      expect((await api("GET", "/api/v1/admin-audit-log?cursor=9223372036854775807")).status).toBe(200);
    });
  });

  describe("path parameters", () => {
    it.each([
      ["an undecodable escape", "/api/v1/connections/%ZZ"],
      ["an encoded slash", "/api/v1/connections/a%2Fb"],
      ["a NUL byte", "/api/v1/connections/a%00"],
    ])("answer %s with 400 invalid_request", async (_case, path) => {
      expectProblem(await api("GET", path), 400, "invalid_request");
    });
  });

  describe("unknown routes", () => {
    it.each([
      ["GET", "/"],
      ["GET", "/api/v1/nothing"],
      ["PUT", "/api/v1/connections"],
      ["GET", "/api/v2/connections"],
    ])("answer %s %s with a problem+json 404", async (method, path) => {
      expectProblem(await api(method, path), 404, "not_found");
    });
  });

  describe("OpenAPI", () => {
    it("serves an OpenAPI 3.1 document generated from the route schemas", async () => {
      const response = await api("GET", "/api/v1/openapi.json", { token: null });
      expect(response.status).toBe(200);
      const document = response.body;
      expect(document.openapi).toBe("3.1.0");
      // Where the paths are served: a variable for the control plane's address.
      expect(document.servers).toEqual([
        expect.objectContaining({
          url: "{controlPlane}",
          variables: { controlPlane: expect.objectContaining({ default: "http://127.0.0.1:8081" }) },
        }),
      ]);
      const operationIds = Object.values(document.paths as Record<string, Record<string, { operationId: string }>>)
        .flatMap((item) => Object.values(item))
        .map((operation) => operation.operationId)
        .sort();
      expect(operationIds).toEqual(
        [
          "createAgent",
          "createApiKey",
          "createConnection",
          "createPolicy",
          "deleteConnection",
          "deletePolicy",
          "evaluatePolicies",
          "getConnection",
          "getPolicy",
          "getSession",
          "getSessionStats",
          "getUsage",
          "listAdminAuditLog",
          "listAgents",
          "listApiKeys",
          "listConnections",
          "listPolicies",
          "listSessions",
          "replacePolicy",
          "replaySession",
          "revokeAgent",
          "revokeApiKey",
          "getApiKey",
          "updateApiKey",
          "rotateApiKey",
          "updateConnection",
          // SIEM export and alerts
          "createExporter",
          "listExporters",
          "getExporter",
          "replaceExporter",
          "deleteExporter",
          "testExporter",
          "createAlertRule",
          "listAlertRules",
          "getAlertRule",
          "replaceAlertRule",
          "deleteAlertRule",
          "listAlerts",
          "getAlert",
          "verifyAuditChain",
          // Approvals
          "listApprovals",
          "getApproval",
          "approveApproval",
          "denyApproval",
        ].sort(),
      );
      const rotate = document.paths["/api/v1/api-keys/{id}/rotate"].post;
      expect(rotate.requestBody.content["application/json"].schema).toMatchObject({
        additionalProperties: false,
        properties: { overlapSeconds: { type: "integer", minimum: 0, maximum: 604_800, default: 3600 } },
      });
      expect(Object.keys(rotate.responses).sort()).toEqual([
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "500",
      ]);
      const create = document.paths["/api/v1/connections"].post;
      const schema = create.requestBody.content["application/json"].schema;
      expect(schema.required.sort()).toEqual(["models", "name", "protocol"]);
      expect(schema.additionalProperties).toBe(false);
      expect(schema.properties.protocol.enum).toEqual(["openai", "ollama", "tgi", "http"]);
      expect(schema.properties.name.pattern).toBe("^[a-z0-9][a-z0-9-]{0,62}$");
      expect(Object.keys(create.responses).sort()).toEqual(["201", "400", "401", "403", "409", "413", "415", "500"]);
      const listParameters = document.paths["/api/v1/agents"].get.parameters.map(
        (parameter: { name: string }) => parameter.name,
      );
      expect(listParameters.sort()).toEqual(["connection", "cursor", "limit"]);
      const created = create.responses["201"].content["application/json"].schema;
      expect(Object.keys(created.properties).sort()).toEqual([
        "createdAt",
        "description",
        "models",
        "name",
        "protocol",
        "updatedAt",
      ]);
    });
  });

  describe("logs", () => {
    it("carries the request id on request lines and never the admin token", async () => {
      const requestId = `test-${randomBytes(6).toString("hex")}`;
      const response = await fetch(`${cp.url}/api/v1/connections`, {
        headers: { authorization: `Bearer ${cp.adminToken}`, "x-request-id": requestId },
      });
      expect(response.headers.get("x-request-id")).toBe(requestId);
      await api("GET", "/api/v1/connections", { token: "mgadmin_a_wrong_guess" });
      const lines = cp.logLines();
      const line = lines.map((text) => JSON.parse(text)).find((entry) => entry.req?.id === requestId);
      expect(line).toMatchObject({
        level: "info",
        req: { headers: { authorization: "[redacted]" } },
        res: { statusCode: 200 },
      });
      const all = lines.join("\n");
      expect(all).not.toContain(cp.adminToken);
      expect(all).not.toContain("mgadmin_a_wrong_guess");
    });

    it("replaces an unusable inbound request id with its own", async () => {
      const response = await fetch(`${cp.url}/healthz`, { headers: { "x-request-id": "bad id\twith tab" } });
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe("health", () => {
    it("reports liveness, and leaves readiness and metrics to the ops listener", async () => {
      expect((await api("GET", "/healthz", { token: null })).body).toEqual({ status: "ok" });
      for (const path of ["/readyz", "/metrics", "/livez"]) {
        for (const token of [null, cp.adminToken]) {
          expectProblem(await api("GET", path, { token }), 404, "not_found");
        }
      }
    });
  });
});

describe("control plane with an unreachable database", () => {
  let cp: RunningControlPlane;
  const missingDatabase = `mg_missing_${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    cp = await startControlPlane({
      databaseUrl: withDatabase(
        process.env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/postgres",
        missingDatabase,
      ),
    });
  });
  afterAll(() => cp.close());

  it("answers 500 with a generic message that leaks nothing, and logs the cause", async () => {
    const response = await apiClient(cp)("GET", "/api/v1/connections");
    expectProblem(response, 500, "internal");
    expect(response.text).not.toContain(missingDatabase);
    expect(response.text).not.toMatch(/prisma|postgres|stack/i);
    expect(cp.logLines().some((line) => line.includes("unhandled error"))).toBe(true);
  });
});
