import { ConfigError } from "@modelgate/core";
import { oidcOptionsFromEnv } from "../src/index.js";

function configError(env: Record<string, string>): string {
  try {
    oidcOptionsFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("oidcOptionsFromEnv", () => {
  it("is off when OIDC_ISSUER is unset or empty", () => {
    expect(oidcOptionsFromEnv({})).toBeUndefined();
    expect(oidcOptionsFromEnv({ OIDC_ISSUER: "  " })).toBeUndefined();
  });

  it("applies defaults", () => {
    expect(
      oidcOptionsFromEnv({ OIDC_ISSUER: "https://idp.example.com/realms/ai", OIDC_AUDIENCE: "modelgate" }),
    ).toEqual({
      issuers: [
        { issuer: "https://idp.example.com/realms/ai", audience: "modelgate", groupsClaim: "groups", userClaim: "sub" },
      ],
      allowInsecureRequests: false,
      clockToleranceSeconds: 30,
      jwksCooldownMs: 30_000,
    });
  });

  it("reads lists and every setting, shared by all issuers", () => {
    const options = oidcOptionsFromEnv({
      OIDC_ISSUER: "https://a.example.com/, http://127.0.0.1:8090",
      OIDC_AUDIENCE: "gateway, control-plane,",
      OIDC_GROUPS_CLAIM: "https://example.com/groups",
      OIDC_USER_CLAIM: "preferred_username",
      OIDC_CLOCK_TOLERANCE_SECONDS: "0",
      OIDC_ALLOW_INSECURE_HTTP: "true",
      OIDC_JWKS_COOLDOWN_MS: "5000",
    });
    const shared = {
      audience: ["gateway", "control-plane"],
      groupsClaim: "https://example.com/groups",
      userClaim: "preferred_username",
    };
    expect(options).toEqual({
      issuers: [
        { issuer: "https://a.example.com/", ...shared },
        { issuer: "http://127.0.0.1:8090", ...shared },
      ],
      allowInsecureRequests: true,
      clockToleranceSeconds: 0,
      jwksCooldownMs: 5000,
    });
  });

  it("reads several groups claims, in order", () => {
    const env = { OIDC_ISSUER: "https://idp.example.com", OIDC_AUDIENCE: "modelgate" };
    expect(
      oidcOptionsFromEnv({ ...env, OIDC_GROUPS_CLAIM: " groups, realm_access.roles ,https://example.com/roles" }),
    ).toMatchObject({ issuers: [{ groupsClaim: ["groups", "realm_access.roles", "https://example.com/roles"] }] });
    expect(oidcOptionsFromEnv({ ...env, OIDC_GROUPS_CLAIM: "roles" })).toMatchObject({
      issuers: [{ groupsClaim: "roles" }],
    });
  });

  it.each([
    ["a doubled comma", "groups,,roles", /OIDC_GROUPS_CLAIM \(entry 2\): empty claim name/],
    ["a trailing comma", "groups,", /OIDC_GROUPS_CLAIM \(entry 2\): empty claim name/],
    ["a leading comma", ",groups", /OIDC_GROUPS_CLAIM \(entry 1\): empty claim name/],
    ["a blank entry", "groups, ,roles", /OIDC_GROUPS_CLAIM \(entry 2\): empty claim name/],
    ["a claim listed twice", "groups,roles,groups", /OIDC_GROUPS_CLAIM: a claim is listed twice/],
    ["an entry over 256 characters", `groups,${"g".repeat(257)}`, /OIDC_GROUPS_CLAIM \(entry 2\): at most 256/],
    ["17 claims", Array.from({ length: 17 }, (_, index) => `c${index}`).join(","), /OIDC_GROUPS_CLAIM: at most 16/],
  ])("refuses OIDC_GROUPS_CLAIM with %s", (_description, groupsClaim, message) => {
    expect(
      configError({
        OIDC_ISSUER: "https://idp.example.com",
        OIDC_AUDIENCE: "modelgate",
        OIDC_GROUPS_CLAIM: groupsClaim,
      }),
    ).toMatch(message);
  });

  it("requires OIDC_AUDIENCE with an issuer", () => {
    expect(configError({ OIDC_ISSUER: "https://idp.example.com" })).toMatch(/OIDC_AUDIENCE/);
    expect(configError({ OIDC_ISSUER: "https://idp.example.com", OIDC_AUDIENCE: " , " })).toMatch(/OIDC_AUDIENCE/);
  });

  it("refuses http issuers unless OIDC_ALLOW_INSECURE_HTTP=true", () => {
    const env = { OIDC_ISSUER: "http://idp.internal", OIDC_AUDIENCE: "modelgate" };
    expect(configError(env)).toMatch(/OIDC_ISSUER.*OIDC_ALLOW_INSECURE_HTTP/);
    expect(configError({ ...env, OIDC_ALLOW_INSECURE_HTTP: "false" })).toMatch(/OIDC_ISSUER/);
    expect(oidcOptionsFromEnv({ ...env, OIDC_ALLOW_INSECURE_HTTP: "yes" })?.allowInsecureRequests).toBe(true);
  });

  it("refuses bad issuer lists", () => {
    const audience = { OIDC_AUDIENCE: "modelgate" };
    expect(configError({ ...audience, OIDC_ISSUER: "idp.example.com" })).toMatch(/OIDC_ISSUER/);
    expect(configError({ ...audience, OIDC_ISSUER: "ftp://idp.example.com" })).toMatch(/OIDC_ISSUER/);
    expect(configError({ ...audience, OIDC_ISSUER: "https://idp.example.com/?tenant=1" })).toMatch(/OIDC_ISSUER/);
    expect(configError({ ...audience, OIDC_ISSUER: "https://a.example.com,nope" })).toMatch(/OIDC_ISSUER \(entry 2\)/);
    expect(configError({ ...audience, OIDC_ISSUER: "https://a.example.com,https://a.example.com" })).toMatch(/twice/);
    expect(configError({ ...audience, OIDC_ISSUER: ",," })).toMatch(/OIDC_ISSUER/);
  });

  it.each([
    ["OIDC_CLOCK_TOLERANCE_SECONDS", "above 300", "301"],
    ["OIDC_CLOCK_TOLERANCE_SECONDS", "negative", "-1"],
    ["OIDC_CLOCK_TOLERANCE_SECONDS", "fractional", "1.5"],
    ["OIDC_CLOCK_TOLERANCE_SECONDS", "not a number", "soon"],
    ["OIDC_JWKS_COOLDOWN_MS", "above an hour", "3600001"],
    ["OIDC_JWKS_COOLDOWN_MS", "in exponent notation", "1e3"],
    ["OIDC_ALLOW_INSECURE_HTTP", "not a boolean", "maybe"],
    ["OIDC_GROUPS_CLAIM", "over 256 characters", "g".repeat(257)],
  ])("names %s when it is %s, without echoing the value", (name, _description, value) => {
    const message = configError({ OIDC_ISSUER: "https://idp.example.com", OIDC_AUDIENCE: "modelgate", [name]: value });
    expect(message).toContain(name);
    expect(message).not.toContain(value);
  });

  it("accepts the bounds", () => {
    const options = oidcOptionsFromEnv({
      OIDC_ISSUER: "https://idp.example.com",
      OIDC_AUDIENCE: "modelgate",
      OIDC_CLOCK_TOLERANCE_SECONDS: "300",
      OIDC_JWKS_COOLDOWN_MS: "0",
    });
    expect(options).toMatchObject({ clockToleranceSeconds: 300, jwksCooldownMs: 0 });
  });

  it("refuses OIDC settings without OIDC_ISSUER", () => {
    expect(configError({ OIDC_AUDIENCE: "modelgate", OIDC_GROUPS_CLAIM: "roles" })).toMatch(
      /OIDC_AUDIENCE, OIDC_GROUPS_CLAIM set but OIDC_ISSUER is not/,
    );
  });

  it("treats empty settings as unset", () => {
    expect(oidcOptionsFromEnv({ OIDC_AUDIENCE: "", OIDC_GROUPS_CLAIM: " " })).toBeUndefined();
    expect(
      oidcOptionsFromEnv({
        OIDC_ISSUER: "https://idp.example.com",
        OIDC_AUDIENCE: "modelgate",
        OIDC_GROUPS_CLAIM: "",
        OIDC_CLOCK_TOLERANCE_SECONDS: "",
      }),
    ).toMatchObject({ issuers: [{ groupsClaim: "groups" }], clockToleranceSeconds: 30 });
  });
});
