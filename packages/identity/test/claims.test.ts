import { OidcVerifier, oidcOptionsFromEnv, TokenError } from "../src/index.js";
import { startTestIdentityProvider, type TestIdentityProvider } from "../src/testing.js";
import { claimsFor, refusal, startVerifier } from "./fixtures.js";

const started: { close(): unknown }[] = [];

afterAll(async () => {
  for (const item of started.reverse()) await item.close();
});

async function providerWithGroupsAt(
  groupsClaim: string,
): Promise<{ idp: TestIdentityProvider; verifier: OidcVerifier }> {
  const idp = await startTestIdentityProvider({ groupsClaim });
  started.push(idp);
  const verifier = new OidcVerifier({
    issuers: [{ issuer: idp.issuer, audience: idp.audience, groupsClaim, userClaim: "sub" }],
    allowInsecureRequests: true,
  });
  await verifier.start();
  started.push(verifier);
  return { idp, verifier };
}

describe("groups claim paths", () => {
  it("reads Keycloak's realm_access.roles", async () => {
    const { idp, verifier } = await providerWithGroupsAt("realm_access.roles");
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["realm-admin", "users"] });
    expect((await verifier.verify(token)).groups).toEqual(["realm-admin", "users"]);
  });

  it("reads a namespaced URL claim, dots and all", async () => {
    const { idp, verifier } = await providerWithGroupsAt("https://modelgate.example.com/groups");
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["data-science"] });
    expect((await verifier.verify(token)).groups).toEqual(["data-science"]);
  });

  it("prefers a literal top-level name over the dotted path", async () => {
    const { idp, verifier } = await providerWithGroupsAt("team.groups");
    const token = await idp.signRaw(claimsFor(idp, { "team.groups": ["literal"], team: { groups: ["nested"] } }));
    expect((await verifier.verify(token)).groups).toEqual(["literal"]);
  });

  it("does not walk into prototype properties", async () => {
    const { idp, verifier } = await providerWithGroupsAt("constructor.name");
    const token = await idp.signRaw(claimsFor(idp));
    expect((await verifier.verify(token)).groups).toEqual([]);
  });
});

describe("groups values", () => {
  let idp: TestIdentityProvider;
  let verifier: OidcVerifier;

  beforeAll(async () => {
    idp = await startTestIdentityProvider({ groupsClaim: "roles" });
    started.push(idp);
    verifier = await startVerifier([idp]);
    started.push(verifier);
  });

  const groupsOf = async (groups: unknown) =>
    (await verifier.verify(await idp.signRaw(claimsFor(idp, { groups })))).groups;

  it("accepts a single string", async () => {
    expect(await groupsOf("admins")).toEqual(["admins"]);
  });

  it("ignores non-strings, empty strings and duplicates", async () => {
    expect(await groupsOf(["a", 1, null, { b: 1 }, ["c"], "", "a", "d"])).toEqual(["a", "d"]);
  });

  it("treats a claim of another type as no groups", async () => {
    expect(await groupsOf({ admins: true })).toEqual([]);
    expect(await groupsOf(7)).toEqual([]);
    expect(await groupsOf(undefined)).toEqual([]);
  });

  it("accepts 256 groups of 256 characters", async () => {
    const groups = Array.from({ length: 256 }, (_, index) => `${index}`.padStart(3, "0"));
    expect(await groupsOf(groups)).toHaveLength(256);
    expect(await groupsOf(["g".repeat(256)])).toEqual(["g".repeat(256)]);
  });

  it("refuses more than 256 groups", async () => {
    const groups = Array.from({ length: 257 }, (_, index) => `g${index}`);
    expect(await refusal(groupsOf(groups))).toBe("token_claims_invalid");
  });

  it("refuses a group longer than 256 characters", async () => {
    expect(await refusal(groupsOf(["ok", "g".repeat(257)]))).toBe("token_claims_invalid");
  });
});

describe("several groups claims", () => {
  let idp: TestIdentityProvider;
  let verifier: OidcVerifier;

  beforeAll(async () => {
    idp = await startTestIdentityProvider();
    started.push(idp);
    // Configured as an operator would, through the environment.
    const options = oidcOptionsFromEnv({
      OIDC_ISSUER: idp.issuer,
      OIDC_AUDIENCE: idp.audience,
      OIDC_ALLOW_INSECURE_HTTP: "true",
      OIDC_GROUPS_CLAIM: "groups,realm_access.roles,roles",
    });
    if (!options) throw new Error("expected OIDC options");
    verifier = new OidcVerifier(options);
    await verifier.start();
    started.push(verifier);
  });

  const groupsOf = async (claims: Record<string, unknown>) =>
    (await verifier.verify(await idp.mintAccessToken({ subject: "alice", claims }))).groups;
  const numbered = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => `${prefix}${index}`);

  it("merges every listed claim, the first claim's groups first, without duplicates", async () => {
    const claims = { groups: ["staff", "ml"], realm_access: { roles: ["ml", "approver"] }, roles: "admin" };
    expect(await groupsOf(claims)).toEqual(["staff", "ml", "approver", "admin"]);
  });

  it("takes the groups of whichever claims are present", async () => {
    expect(await groupsOf({ realm_access: { roles: ["approver"] } })).toEqual(["approver"]);
    expect(await groupsOf({ roles: ["admin"], groups: ["staff"] })).toEqual(["staff", "admin"]);
    expect(await groupsOf({})).toEqual([]);
  });

  it("ignores a claim of another type, as with a single claim, and keeps the others", async () => {
    const claims = { groups: { staff: true }, realm_access: "approver", roles: ["admin", 7, ""] };
    expect(await groupsOf(claims)).toEqual(["admin"]);
  });

  it("bounds the merged set at 256 groups, counted after duplicates collapse", async () => {
    const groups = numbered("g", 200);
    expect(await groupsOf({ groups, roles: numbered("r", 56) })).toHaveLength(256);
    expect(await groupsOf({ groups, roles: groups, realm_access: { roles: numbered("r", 56) } })).toHaveLength(256);
    expect(await refusal(groupsOf({ groups, roles: numbered("r", 57) }))).toBe("token_claims_invalid");
  });

  it("refuses a group over 256 characters in any listed claim", async () => {
    const claims = { groups: ["staff"], realm_access: { roles: ["g".repeat(257)] } };
    expect(await refusal(groupsOf(claims))).toBe("token_claims_invalid");
  });

  it("reads only the listed claims", async () => {
    expect(await groupsOf({ groups: ["staff"], resource_access: { app: { roles: ["admin"] } } })).toEqual(["staff"]);
  });
});

describe("user claim", () => {
  let idp: TestIdentityProvider;
  let verifier: OidcVerifier;

  beforeAll(async () => {
    idp = await startTestIdentityProvider();
    started.push(idp);
    verifier = new OidcVerifier({
      issuers: [{ issuer: idp.issuer, audience: idp.audience, groupsClaim: "groups", userClaim: "preferred_username" }],
      allowInsecureRequests: true,
    });
    await verifier.start();
    started.push(verifier);
  });

  it("takes the subject from the configured claim and keeps the raw sub", async () => {
    const token = await idp.mintAccessToken({ subject: "f81d4fae", claims: { preferred_username: "alice" } });
    expect(await verifier.verify(token)).toMatchObject({ subject: "alice", sub: "f81d4fae" });
  });

  it("refuses a token without the configured claim", async () => {
    const token = await idp.mintAccessToken({ subject: "f81d4fae" });
    const error = await verifier.verify(token).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TokenError);
    expect((error as TokenError).code).toBe("token_claims_invalid");
  });

  it("refuses a subject longer than 256 characters", async () => {
    const token = await idp.signRaw(claimsFor(idp, { preferred_username: "a".repeat(257) }));
    expect(await refusal(verifier.verify(token))).toBe("token_claims_invalid");
  });
});
