import { createHash } from "node:crypto";
import {
  generateSecret,
  hashSecret,
  SECRET_PREFIX,
  secretDisplayPrefix,
  secretMatchesHash,
  secretsEqual,
} from "./secrets.js";

describe("secrets", () => {
  it("generates prefixed base62 secrets that do not repeat", () => {
    const secrets = Array.from({ length: 2000 }, () => generateSecret(SECRET_PREFIX.apiKey));
    for (const secret of secrets) expect(secret).toMatch(/^mg_[0-9A-Za-z]{32}$/);
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it("uses every base62 character at a similar rate", () => {
    const counts = new Map<string, number>();
    for (let index = 0; index < 2000; index += 1) {
      for (const character of generateSecret("").slice(0)) counts.set(character, (counts.get(character) ?? 0) + 1);
    }
    expect(counts.size).toBe(62);
    const expected = (2000 * 32) / 62;
    for (const count of counts.values()) expect(Math.abs(count - expected) / expected).toBeLessThan(0.2);
  });

  it("hashes with SHA-256 hex", () => {
    expect(hashSecret("mg_abc")).toBe(createHash("sha256").update("mg_abc").digest("hex"));
  });

  it("compares secrets exactly", () => {
    expect(secretsEqual("mg_abc", "mg_abc")).toBe(true);
    expect(secretsEqual("mg_abc", "mg_abd")).toBe(false);
    expect(secretsEqual("mg_abc", "mg_abcd")).toBe(false);
    expect(secretsEqual("", "mg_abc")).toBe(false);
  });

  it("matches a secret against its stored hash, and nothing else", () => {
    const secret = generateSecret(SECRET_PREFIX.agentToken);
    expect(secretMatchesHash(secret, hashSecret(secret))).toBe(true);
    expect(secretMatchesHash(`${secret}x`, hashSecret(secret))).toBe(false);
    expect(secretMatchesHash(secret, "not-hex")).toBe(false);
  });

  it("keeps only the prefix and four characters for display", () => {
    expect(secretDisplayPrefix("mg_ABCDEFGH", SECRET_PREFIX.apiKey)).toBe("mg_ABCD");
  });
});
