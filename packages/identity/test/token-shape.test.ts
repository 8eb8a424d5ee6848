import { looksLikeJwt, TokenError } from "../src/index.js";

describe("looksLikeJwt", () => {
  it("accepts three base64url segments", () => {
    expect(looksLikeJwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl")).toBe(true);
    expect(looksLikeJwt("a.b.c")).toBe(true);
    // Unsigned tokens still count, so that they get a precise refusal.
    expect(looksLikeJwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")).toBe(true);
  });

  it("accepts five segments (an encrypted JWT), so the verifier can say why it is refused", () => {
    expect(looksLikeJwt("a.b.c.d.e")).toBe(true);
    // Direct encryption (`alg: dir`) leaves the encrypted key empty.
    expect(looksLikeJwt("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn")).toBe(true);
  });

  it("rejects anything else", () => {
    for (const value of [
      "",
      "mg_0123456789abcdefghijABCDEFGHIJ01",
      "a.b",
      "a.b.c.d",
      "a.b.c.d.e.f",
      ".b.c.d.e",
      "a..c",
      ".b.c",
      "a+b.c.d",
      "a.b.c ",
    ]) {
      expect(looksLikeJwt(value)).toBe(false);
    }
    expect(looksLikeJwt(undefined as unknown as string)).toBe(false);
  });
});

describe("TokenError", () => {
  it("carries a 503 only for an unavailable identity provider", () => {
    expect(new TokenError("identity_provider_unavailable").status).toBe(503);
    expect(new TokenError("token_expired").status).toBe(401);
    expect(new TokenError("token_expired")).toMatchObject({ name: "TokenError", code: "token_expired" });
  });
});
