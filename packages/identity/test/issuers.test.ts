import { ConfigError } from "@modelgate/core";
import { OidcVerifier, TokenError } from "../src/index.js";
import { startTestIdentityProvider, type TestIdentityProvider } from "../src/testing.js";
import { captureLogger, claimsFor, issuerConfig, refusal, startVerifier, waitFor } from "./fixtures.js";

let trusted: TestIdentityProvider;
let stranger: TestIdentityProvider;
let verifier: OidcVerifier;

beforeAll(async () => {
  [trusted, stranger] = await Promise.all([startTestIdentityProvider(), startTestIdentityProvider()]);
  verifier = await startVerifier([trusted]);
});

afterAll(async () => {
  verifier.close();
  await Promise.all([trusted.close(), stranger.close()]);
});

describe("issuer trust", () => {
  it("refuses a genuine token from a provider that is not configured", async () => {
    const token = await stranger.mintAccessToken({ subject: "mallory" });
    expect(await refusal(verifier.verify(token))).toBe("token_issuer_untrusted");
  });

  it("refuses a token claiming a trusted issuer but signed with a stranger's key", async () => {
    const token = await stranger.signRaw(claimsFor(trusted, { sub: "mallory" }));
    expect(await refusal(verifier.verify(token))).toBe("token_key_unknown");
  });

  it("refuses a token claiming a trusted issuer and its kid but signed with a stranger's key", async () => {
    const token = await stranger.signRaw(claimsFor(trusted, { sub: "mallory" }), { kid: trusted.publicJwk().kid });
    expect(await refusal(verifier.verify(token))).toBe("token_signature_invalid");
  });

  it("matches the issuer exactly, not by URL normalisation", async () => {
    const token = await trusted.signRaw(claimsFor(trusted, { iss: `${trusted.issuer}/` }));
    expect(await refusal(verifier.verify(token))).toBe("token_issuer_untrusted");
  });

  it("reports discovery state for readiness", () => {
    expect(verifier.status()).toEqual([{ issuer: trusted.issuer, discovered: true }]);
  });
});

describe("two trusted issuers", () => {
  it("verifies each issuer's tokens with that issuer's settings", async () => {
    const keycloakLike = await startTestIdentityProvider({ audience: "gateway", groupsClaim: "realm_access.roles" });
    const both = new OidcVerifier({
      issuers: [
        issuerConfig(trusted),
        issuerConfig(keycloakLike, { audience: ["gateway", "control-plane"], groupsClaim: "realm_access.roles" }),
      ],
      allowInsecureRequests: true,
    });
    try {
      await both.start();
      const fromFirst = await trusted.mintAccessToken({ subject: "alice", groups: ["a"] });
      const fromSecond = await keycloakLike.mintAccessToken({ subject: "bob", groups: ["b"] });
      expect(await both.verify(fromFirst)).toMatchObject({ issuer: trusted.issuer, subject: "alice", groups: ["a"] });
      expect(await both.verify(fromSecond)).toMatchObject({
        issuer: keycloakLike.issuer,
        subject: "bob",
        groups: ["b"],
      });
      // Each issuer's audience list applies to its own tokens only.
      const crossAudience = await trusted.signRaw(claimsFor(trusted, { aud: "gateway" }));
      expect(await refusal(both.verify(crossAudience))).toBe("token_audience_invalid");
      expect(both.status().map((entry) => entry.discovered)).toEqual([true, true]);
    } finally {
      both.close();
      await keycloakLike.close();
    }
  });
});

describe("configuration", () => {
  it("refuses an http issuer unless insecure requests are allowed", () => {
    expect(() => new OidcVerifier({ issuers: [issuerConfig(trusted)] })).toThrow(ConfigError);
    expect(() => new OidcVerifier({ issuers: [issuerConfig(trusted)] })).toThrow(/http/);
    expect(() => new OidcVerifier({ issuers: [issuerConfig(trusted)], allowInsecureRequests: true })).not.toThrow();
  });

  it("refuses incomplete or duplicate issuer settings", () => {
    const base = issuerConfig(trusted);
    const invalid = [
      { issuers: [] },
      { issuers: [{ ...base, issuer: "not a url" }] },
      { issuers: [{ ...base, issuer: "ftp://idp.example.com" }] },
      { issuers: [{ ...base, audience: "" }] },
      { issuers: [{ ...base, audience: [] }] },
      { issuers: [{ ...base, groupsClaim: "" }] },
      { issuers: [{ ...base, groupsClaim: [] }] },
      { issuers: [{ ...base, groupsClaim: ["groups", ""] }] },
      { issuers: [{ ...base, groupsClaim: ["groups", "roles", "groups"] }] },
      { issuers: [{ ...base, userClaim: "" }] },
      { issuers: [base, base] },
      { issuers: [base], clockToleranceSeconds: -1 },
      { issuers: [base], jwksCooldownMs: Number.NaN },
    ];
    for (const options of invalid) {
      expect(() => new OidcVerifier({ allowInsecureRequests: true, ...options })).toThrow(ConfigError);
    }
  });
});

describe("an identity provider that is down at start", () => {
  it("answers 503 until background discovery succeeds, then verifies", async () => {
    // Take an ephemeral port, then free it: the provider "comes up" there later.
    const first = await startTestIdentityProvider();
    const { issuer, port } = first;
    const tokenWhileDown = await first.signRaw(claimsFor(first));
    await first.close();

    const logger = captureLogger();
    const waiting = new OidcVerifier({
      issuers: [issuerConfig(first)],
      allowInsecureRequests: true,
      discoveryRetryInitialMs: 50,
      discoveryRetryMaxMs: 200,
      logger,
    });
    let revived: TestIdentityProvider | undefined;
    try {
      await expect(waiting.start()).resolves.toBeUndefined();
      expect(waiting.status()).toEqual([{ issuer, discovered: false }]);
      const error = await waiting.verify(tokenWhileDown).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TokenError);
      expect((error as TokenError).code).toBe("identity_provider_unavailable");
      expect((error as TokenError).status).toBe(503);
      expect(logger.entries.some((entry) => entry.level === "warn" && /discovery failed/.test(entry.msg))).toBe(true);

      revived = await startTestIdentityProvider({ port });
      expect(revived.issuer).toBe(issuer);
      await waitFor(() => waiting.status()[0]?.discovered === true);
      const token = await revived.mintAccessToken({ subject: "alice" });
      await expect(waiting.verify(token)).resolves.toMatchObject({ subject: "alice", issuer });
    } finally {
      waiting.close();
      await revived?.close();
    }
  });

  it("stops retrying when closed", async () => {
    const gone = await startTestIdentityProvider();
    await gone.close();
    const logger = captureLogger();
    const closing = new OidcVerifier({
      issuers: [issuerConfig(gone)],
      allowInsecureRequests: true,
      discoveryRetryInitialMs: 20,
      discoveryRetryMaxMs: 20,
      logger,
    });
    await closing.start();
    closing.close();
    const attempts = logger.entries.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(logger.entries.length).toBe(attempts);
  });
});
