// People sign in to the control-plane API with OIDC access tokens from a real
// identity provider (oidc-provider on loopback); their groups give roles.
import { OidcVerifier } from "@modelgate/identity";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const AUDIENCE = "https://modelgate.test/api";

describe("OIDC sign-in and roles on the control-plane API", () => {
  let idp: TestIdentityProvider;
  let verifier: OidcVerifier;
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  const tokenFor = (groups: string[], subject = "alice") =>
    idp.mintAccessToken({ subject, email: `${subject}@example.com`, groups });

  beforeAll(async () => {
    idp = await startTestIdentityProvider({ audience: AUDIENCE });
    verifier = new OidcVerifier({
      issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
      allowInsecureRequests: true,
    });
    await verifier.start();
    cp = await startControlPlane({
      oidc: { verifier, roleGroups: { admin: ["mg-admins"], auditor: ["mg-auditors"], approver: ["mg-approvers"] } },
      // Shaped like a JWT on purpose: it must still be taken as the bootstrap token.
      adminToken: "mgadmin.bootstrap-token-with-two.dots-and-enough-length",
    });
    api = apiClient(cp);
  });
  afterAll(async () => {
    await cp.close();
    verifier.close();
    await idp.close();
  });

  it("an admin-group member changes configuration, recorded under their own name", async () => {
    const token = await tokenFor(["mg-admins"], "carol");
    const created = await api("POST", "/api/v1/connections", {
      token,
      body: { name: "by-oidc", protocol: "openai", models: ["m"] },
    });
    expect(created.status).toBe(201);
    const entry = await cp.db.adminAuditLog.findFirstOrThrow({ where: { targetId: "by-oidc" } });
    expect({ actor: entry.actor, actorType: entry.actorType }).toEqual({ actor: "carol", actorType: "oidc" });
  });

  it("an auditor reads the admin audit log but may not change anything", async () => {
    const token = await tokenFor(["mg-auditors"]);
    expect((await api("GET", "/api/v1/admin-audit-log", { token })).status).toBe(200);
    expectProblem(
      await api("POST", "/api/v1/connections", { token, body: { name: "nope", protocol: "openai", models: ["m"] } }),
      403,
      "forbidden",
    );
    expectProblem(await api("GET", "/api/v1/policies", { token }), 403, "forbidden");
  });

  it("only admins see, change or rotate API keys: an auditor is refused and nothing changes", async () => {
    const created = (await api("POST", "/api/v1/api-keys", { body: { name: "svc", groups: ["g"] } })).body;
    const before = await cp.db.apiKey.findUniqueOrThrow({ where: { id: created.id } });
    const auditor = await tokenFor(["mg-auditors"], "audrey");
    const path = `/api/v1/api-keys/${created.id}`;
    for (const [method, url, body] of [
      ["GET", "/api/v1/api-keys", undefined],
      ["GET", path, undefined],
      ["PATCH", path, { groups: ["everything"] }],
      ["POST", `${path}/rotate`, { overlapSeconds: 0 }],
      ["DELETE", path, undefined],
    ] as const) {
      expectProblem(await api(method, url, { token: auditor, body }), 403, "forbidden");
    }
    expect(await cp.db.apiKey.findUniqueOrThrow({ where: { id: created.id } })).toEqual(before);
    expect(await cp.db.adminAuditLog.count({ where: { targetId: created.id } })).toBe(1);

    const admin = await tokenFor(["mg-admins"], "carol");
    const rotated = await api("POST", `${path}/rotate`, { token: admin, body: {} });
    expect(rotated.status).toBe(200);
    const entry = await cp.db.adminAuditLog.findFirstOrThrow({
      where: { targetId: created.id, action: "api_key.rotate" },
    });
    expect({ actor: entry.actor, actorType: entry.actorType }).toEqual({ actor: "carol", actorType: "oidc" });
  });

  it("a person in no role group is authenticated but may call nothing", async () => {
    const token = await tokenFor(["data-science"]);
    expectProblem(await api("GET", "/api/v1/connections", { token }), 403, "forbidden");
    expectProblem(await api("GET", "/api/v1/admin-audit-log", { token }), 403, "forbidden");
  });

  it("refuses a forged or tampered token, and the bootstrap token still works", async () => {
    const token = await tokenFor(["mg-admins"]);
    const [header, payload, signature] = token.split(".");
    const forgedPayload = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload as string, "base64url").toString()),
        groups: ["mg-admins", "x"],
      }),
    ).toString("base64url");
    const answer = await api("GET", "/api/v1/connections", { token: `${header}.${forgedPayload}.${signature}` });
    expectProblem(answer, 401, "unauthenticated");
    expect(answer.body.detail).toContain("token_signature_invalid");
    expect((await api("GET", "/api/v1/connections")).status).toBe(200);
  });
});
