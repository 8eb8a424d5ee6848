import { createPublicKey } from "node:crypto";
import { SignJWT } from "jose";
import { type OidcVerifier, TokenError } from "../src/index.js";
import { startTestIdentityProvider, type TestIdentityProvider } from "../src/testing.js";
import {
  base64url,
  captureLogger,
  claimsFor,
  issuerConfig as issuerOf,
  nowSeconds,
  refusal,
  startVerifier,
} from "./fixtures.js";

let idp: TestIdentityProvider;
let verifier: OidcVerifier;
const logger = captureLogger();
// Every token a test hands the verifier, to check none of them is ever logged.
const seenTokens: string[] = [];

beforeAll(async () => {
  idp = await startTestIdentityProvider();
  verifier = await startVerifier([idp], { logger });
});

afterAll(async () => {
  verifier.close();
  await idp.close();
});

function verify(token: string) {
  seenTokens.push(token);
  return verifier.verify(token);
}

describe("a valid access token", () => {
  it("yields subject, email, groups, token id and expiry", async () => {
    const token = await idp.mintAccessToken({
      subject: "alice",
      email: "alice@example.com",
      groups: ["data-science", "ml-ops"],
      expiresInSeconds: 120,
    });
    const verified = await verify(token);
    expect(verified).toEqual({
      authMethod: "oidc",
      issuer: idp.issuer,
      subject: "alice",
      sub: "alice",
      email: "alice@example.com",
      groups: ["data-science", "ml-ops"],
      tokenId: expect.any(String),
      expiresAt: expect.any(Number),
    });
    expect(verified.tokenId?.length).toBeGreaterThan(10);
    expect(Math.abs(verified.expiresAt - (Date.now() + 120_000))).toBeLessThan(5_000);
  });

  it("has no groups and no email when the token carries none", async () => {
    const verified = await verify(await idp.mintAccessToken({ subject: "bob" }));
    expect(verified.groups).toEqual([]);
    expect(verified.email).toBeUndefined();
  });

  it("is accepted within the clock tolerance after exp", async () => {
    const token = await idp.signRaw(claimsFor(idp, { exp: nowSeconds() - 10 }));
    await expect(verify(token)).resolves.toMatchObject({ subject: "alice" });
  });
});

describe("claims that fail validation", () => {
  it("refuses an expired token", async () => {
    const token = await idp.signRaw(claimsFor(idp, { iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }));
    expect(await refusal(verify(token))).toBe("token_expired");
  });

  it("refuses a token that is not valid yet", async () => {
    const token = await idp.signRaw(claimsFor(idp, { nbf: nowSeconds() + 3600, exp: nowSeconds() + 7200 }));
    expect(await refusal(verify(token))).toBe("token_not_yet_valid");
  });

  it("refuses a token for another audience", async () => {
    const token = await idp.signRaw(claimsFor(idp, { aud: "some-other-api" }));
    expect(await refusal(verify(token))).toBe("token_audience_invalid");
  });

  it("refuses a token without an audience", async () => {
    const token = await idp.signRaw(claimsFor(idp, { aud: undefined }));
    expect(await refusal(verify(token))).toBe("token_audience_invalid");
  });

  it("refuses a token without exp", async () => {
    const token = await idp.signRaw(claimsFor(idp, { exp: undefined }));
    expect(await refusal(verify(token))).toBe("token_claims_invalid");
  });

  it("refuses a token whose exp is not a number", async () => {
    const token = await idp.signRaw(claimsFor(idp, { exp: "tomorrow" }));
    expect(await refusal(verify(token))).toBe("token_claims_invalid");
  });

  it("refuses a token without a usable sub", async () => {
    for (const sub of [undefined, "", 42, "x".repeat(257)]) {
      const token = await idp.signRaw(claimsFor(idp, { sub }));
      expect(await refusal(verify(token))).toBe("token_claims_invalid");
    }
  });

  it("refuses a token without iss as untrusted", async () => {
    const token = await idp.signRaw(claimsFor(idp, { iss: undefined }));
    expect(await refusal(verify(token))).toBe("token_issuer_untrusted");
  });

  it("leaves out an email the IdP marks unverified, or one that is not plausible", async () => {
    const unverified = await idp.signRaw(claimsFor(idp, { email: "eve@example.com", email_verified: false }));
    expect((await verify(unverified)).email).toBeUndefined();
    const verified = await idp.signRaw(claimsFor(idp, { email: "eve@example.com", email_verified: true }));
    expect((await verify(verified)).email).toBe("eve@example.com");
    const tooLong = await idp.signRaw(claimsFor(idp, { email: `${"e".repeat(320)}@example.com` }));
    expect((await verify(tooLong)).email).toBeUndefined();
    const notString = await idp.signRaw(claimsFor(idp, { email: ["eve@example.com"] }));
    expect((await verify(notString)).email).toBeUndefined();
    // Some IdPs send the flag as a string.
    const unverifiedText = await idp.signRaw(claimsFor(idp, { email: "eve@example.com", email_verified: "false" }));
    expect((await verify(unverifiedText)).email).toBeUndefined();
    // Not an address at all: it must never match an email-based policy.
    const notAnAddress = await idp.signRaw(claimsFor(idp, { email: "00U1ABCDEF" }));
    expect((await verify(notAnAddress)).email).toBeUndefined();
  });

  it("refuses an unverified email as the user claim", async () => {
    const byEmail = await startVerifier([idp], { issuers: [{ ...issuerOf(idp), userClaim: "email" }] });
    try {
      const unverified = await idp.signRaw(claimsFor(idp, { email: "victim@example.com", email_verified: false }));
      expect(await refusal(byEmail.verify(unverified))).toBe("token_claims_invalid");
      const verified = await idp.signRaw(claimsFor(idp, { email: "victim@example.com", email_verified: true }));
      expect((await byEmail.verify(verified)).subject).toBe("victim@example.com");
    } finally {
      byEmail.close();
    }
  });

  it("refuses an ID token presented as an access token", async () => {
    for (const claim of ["nonce", "at_hash", "c_hash"]) {
      const idToken = await idp.signRaw(claimsFor(idp, { [claim]: "x" }), { typ: "JWT" });
      expect(await refusal(verify(idToken))).toBe("token_claims_invalid");
    }
  });
});

describe("forged and damaged tokens", () => {
  it("refuses a tampered payload", async () => {
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["users"] });
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload as string, "base64url").toString());
    const forged = `${header}.${base64url({ ...claims, groups: ["admins"] })}.${signature}`;
    expect(await refusal(verify(forged))).toBe("token_signature_invalid");
  });

  it("refuses a tampered signature", async () => {
    const token = await idp.mintAccessToken({ subject: "alice" });
    const [header, payload, signature = ""] = token.split(".");
    const middle = Math.floor(signature.length / 2);
    const flipped = signature[middle] === "A" ? "B" : "A";
    const forged = `${header}.${payload}.${signature.slice(0, middle)}${flipped}${signature.slice(middle + 1)}`;
    expect(await refusal(verify(forged))).toBe("token_signature_invalid");
  });

  it("refuses a token with its signature stripped", async () => {
    const token = await idp.mintAccessToken({ subject: "alice" });
    const [header, payload] = token.split(".");
    expect(await refusal(verify(`${header}.${payload}.`))).toBe("token_signature_invalid");
  });

  it("refuses alg none", async () => {
    for (const alg of ["none", "None", "NONE"]) {
      const token = `${base64url({ alg, typ: "at+jwt" })}.${base64url(claimsFor(idp))}.`;
      expect(await refusal(verify(token))).toBe("token_algorithm_refused");
    }
  });

  it("refuses HS256 signed with the provider's RSA public key (algorithm confusion)", async () => {
    const jwk = idp.publicJwk();
    const pem = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" });
    for (const secret of [Buffer.from(pem), Buffer.from(JSON.stringify(jwk))]) {
      const token = await new SignJWT(claimsFor(idp))
        .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: jwk.kid })
        .sign(new Uint8Array(secret));
      expect(await refusal(verify(token))).toBe("token_algorithm_refused");
    }
  });

  it("refuses other algorithms outside the allow-list", async () => {
    for (const alg of ["HS384", "HS512", "EdDSA", "RSA-OAEP", "dir", ""]) {
      const token = `${base64url({ alg, kid: idp.publicJwk().kid })}.${base64url(claimsFor(idp))}.c2ln`;
      expect(await refusal(verify(token))).toBe("token_algorithm_refused");
    }
    const noAlg = `${base64url({ typ: "JWT" })}.${base64url(claimsFor(idp))}.c2ln`;
    expect(await refusal(verify(noAlg))).toBe("token_algorithm_refused");
  });

  it("refuses a token whose kid the issuer does not publish", async () => {
    const token = await idp.signRaw(claimsFor(idp), { kid: "not-a-published-kid" });
    expect(await refusal(verify(token))).toBe("token_key_unknown");
  });

  it("refuses a token signed with a published kid but an algorithm that key is not for", async () => {
    // The published key is marked RS256; the key lookup fails before any
    // signature is checked, so the signature need not be real.
    const header = { alg: "PS256", kid: idp.publicJwk().kid };
    const token = `${base64url(header)}.${base64url(claimsFor(idp))}.c2ln`;
    expect(await refusal(verify(token))).toBe("token_key_unknown");
  });

  it("refuses unknown critical header parameters", async () => {
    // jose checks `crit` before the signature, so the signature need not be real.
    const header = { alg: "RS256", kid: idp.publicJwk().kid, crit: ["x-unknown"], "x-unknown": true };
    const token = `${base64url(header)}.${base64url(claimsFor(idp))}.c2ln`;
    expect(await refusal(verify(token))).toBe("token_malformed");
  });
});

describe("garbage", () => {
  it.each([
    ["empty", ""],
    ["a word", "abc"],
    ["three dots", "a.b.c"],
    ["two segments", "eyJhbGciOiJSUzI1NiJ9.e30"],
    ["five segments (JWE)", "a.b.c.d.e"],
    ["whitespace", " . . "],
    ["header that is not JSON", `${base64url("not json")}.${base64url({})}.c2ln`],
    ["header that is a JSON array", `${base64url([1])}.${base64url({})}.c2ln`],
    ["20 KiB", "a".repeat(20 * 1024)],
    ["20 KiB shaped like a JWT", `${"a".repeat(10 * 1024)}.${"b".repeat(10 * 1024)}.c`],
  ])("refuses %s as malformed", async (_name, token) => {
    expect(await refusal(verify(token))).toBe("token_malformed");
  });

  it("says why an encrypted (JWE) or oversized token is refused, without echoing it", async () => {
    const jwe = `${base64url({ alg: "dir", enc: "A256GCM" })}..aXZpdml2aXZpdml2.Y2lwaGVydGV4dGNpcGhlcg.dGFndGFndGFn`;
    const big = `${base64url({ alg: "RS256" })}.${"b".repeat(17 * 1024)}.c2ln`;
    for (const [token, message] of [
      [jwe, "encrypted tokens (JWE) are not accepted; send a signed access token (JWS)"],
      [big, "the access token is larger than 16384 bytes"],
    ] as const) {
      const error = await verify(token).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TokenError);
      expect(error).toMatchObject({ code: "token_malformed", status: 401, message });
    }
  });

  it("refuses a payload that is not JSON", async () => {
    const token = `${base64url({ alg: "RS256" })}.${base64url("not json")}.c2ln`;
    expect(await refusal(verify(token))).toBe("token_malformed");
  });

  it("refuses a genuinely signed token over 16 KiB without parsing it", async () => {
    const token = await idp.mintAccessToken({ subject: "alice", claims: { padding: "p".repeat(17 * 1024) } });
    expect(await refusal(verify(token))).toBe("token_malformed");
  });

  it("refuses non-string input with a TokenError", async () => {
    for (const value of [undefined, null, 42, {}, ["a.b.c"]]) {
      const error = await verifier.verify(value as unknown as string).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TokenError);
      expect((error as TokenError).code).toBe("token_malformed");
      expect((error as TokenError).status).toBe(401);
    }
  });
});

describe("logging", () => {
  it("never writes a token into the log", () => {
    const logged = JSON.stringify(logger.entries);
    for (const token of seenTokens) {
      const signature = token.split(".")[2];
      if (token.length > 20) expect(logged).not.toContain(token);
      if (signature && signature.length > 20) expect(logged).not.toContain(signature);
    }
  });
});
