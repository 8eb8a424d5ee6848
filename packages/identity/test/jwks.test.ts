import { startTestIdentityProvider, type TestIdentityProvider } from "../src/testing.js";
import { captureLogger, claimsFor, refusal, sleep, startVerifier } from "./fixtures.js";

let idp: TestIdentityProvider;

beforeAll(async () => {
  idp = await startTestIdentityProvider();
});

afterAll(async () => {
  await idp.close();
});

const forged = (count: number) =>
  Promise.all(Array.from({ length: count }, (_, index) => idp.signRaw(claimsFor(idp), { kid: `forged-${index}` })));

describe("JWKS fetching", () => {
  it("fetches the key set once at start and serves known keys from the cache", async () => {
    const before = idp.jwksRequests;
    const verifier = await startVerifier([idp]);
    try {
      expect(idp.jwksRequests - before).toBe(1);
      const tokens = await Promise.all([1, 2, 3].map((n) => idp.mintAccessToken({ subject: `user-${n}` })));
      for (const token of tokens) await verifier.verify(token);
      expect(idp.jwksRequests - before).toBe(1);
    } finally {
      verifier.close();
    }
  });

  it("lets a flood of unknown kids cause at most one refetch per cooldown", async () => {
    const cooldownMs = 500;
    const tokens = await forged(50);
    const verifier = await startVerifier([idp], { jwksCooldownMs: cooldownMs });
    try {
      // Right after the start fetch the set is cooling down: no refetch at all.
      const atStart = idp.jwksRequests;
      const early = await Promise.all(tokens.map((token) => refusal(verifier.verify(token))));
      expect(new Set(early)).toEqual(new Set(["token_key_unknown"]));
      expect(idp.jwksRequests).toBe(atStart);

      // Once the cooldown has passed, 50 concurrent misses share one refetch,
      // and 50 more right after it cause none.
      await sleep(cooldownMs + 50);
      const concurrent = await Promise.all(tokens.map((token) => refusal(verifier.verify(token))));
      for (const token of tokens) concurrent.push(await refusal(verifier.verify(token)));
      expect(new Set(concurrent)).toEqual(new Set(["token_key_unknown"]));
      expect(idp.jwksRequests - atStart).toBe(1);
    } finally {
      verifier.close();
    }
  });

  it("picks up a rotated key and refuses tokens signed with the retired one", async () => {
    const rotating = await startTestIdentityProvider();
    const verifier = await startVerifier([rotating], { jwksCooldownMs: 200 });
    try {
      const old = await rotating.mintAccessToken({ subject: "alice" });
      await expect(verifier.verify(old)).resolves.toMatchObject({ subject: "alice" });
      const oldKid = rotating.publicJwk().kid;

      await rotating.rotateKeys();
      expect(rotating.publicJwk().kid).not.toBe(oldKid);
      const fresh = await rotating.mintAccessToken({ subject: "alice" });
      // The cooldown is counted from the start fetch; once it has passed the
      // new kid triggers a refetch.
      await sleep(250);
      await expect(verifier.verify(fresh)).resolves.toMatchObject({ subject: "alice" });
      expect(await refusal(verifier.verify(old))).toBe("token_key_unknown");
    } finally {
      verifier.close();
      await rotating.close();
    }
  });

  it("answers 503 while the JWKS endpoint fails, without hammering it, and recovers", async () => {
    const failing = await startTestIdentityProvider();
    failing.setJwksAvailable(false);
    const logger = captureLogger();
    const verifier = await startVerifier([failing], { jwksCooldownMs: 300, logger });
    try {
      expect(verifier.status()).toEqual([{ issuer: failing.issuer, discovered: true }]);
      const afterStart = failing.jwksRequests;
      const token = await failing.mintAccessToken({ subject: "alice" });
      const codes = await Promise.all(Array.from({ length: 20 }, () => refusal(verifier.verify(token))));
      for (let n = 0; n < 20; n++) codes.push(await refusal(verifier.verify(token)));
      expect(new Set(codes)).toEqual(new Set(["identity_provider_unavailable"]));
      // The failed start fetch suppresses fetching for one cooldown.
      expect(failing.jwksRequests).toBe(afterStart);
      expect(logger.entries.filter((entry) => entry.msg === "JWKS fetch failed")).toHaveLength(1);

      failing.setJwksAvailable(true);
      await sleep(350);
      await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "alice" });
      expect(failing.jwksRequests).toBe(afterStart + 1);
    } finally {
      verifier.close();
      await failing.close();
    }
  });
});
