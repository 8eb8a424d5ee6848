import { randomBytes } from "node:crypto";
import { loadConfig, redactConfig } from "./config.js";
import { createSecretBox, parseSecretsKey } from "./secret-box.js";

describe("secret box", () => {
  const key = randomBytes(32);
  const box = createSecretBox(key);

  it("seals so that the stored value does not show the secret, and opens it for the same row only", () => {
    const sealed = box.seal("mgwhsec_abc123", "exporter:1");
    expect(sealed).toMatch(/^aesgcm1\./);
    expect(sealed).not.toContain("abc123");
    expect(box.open(sealed, "exporter:1")).toBe("mgwhsec_abc123");
    // Two seals of the same secret differ (random IV).
    expect(box.seal("mgwhsec_abc123", "exporter:1")).not.toBe(sealed);
    expect(() => box.open(sealed, "exporter:2")).toThrow("does not open");
    expect(() => createSecretBox(randomBytes(32)).open(sealed, "exporter:1")).toThrow("does not open");
    expect(() => createSecretBox(undefined).open(sealed, "exporter:1")).toThrow("MODELGATE_SECRETS_KEY is not set");
  });

  it("without a key stores the secret marked plain, which a box with a key still opens", () => {
    const plain = createSecretBox(undefined);
    expect(plain.sealing).toBe(false);
    const stored = plain.seal("mgwhsec_xyz", "exporter:1");
    expect(stored).toBe("plain.mgwhsec_xyz");
    expect(box.open(stored, "exporter:1")).toBe("mgwhsec_xyz");
    expect(() => box.open("rot13.abc", "exporter:1")).toThrow("unknown format");
  });

  it("takes MODELGATE_SECRETS_KEY as 32 bytes in base64 or hex, and never shows it", () => {
    expect(parseSecretsKey(key.toString("base64"))).toEqual(key);
    expect(parseSecretsKey(key.toString("hex"))).toEqual(key);
    expect(parseSecretsKey(randomBytes(16).toString("base64"))).toBeUndefined();
    const required = {
      DATABASE_URL: "postgresql://db/modelgate",
      MODELGATE_ADMIN_TOKEN: "a".repeat(32),
      MODELGATE_GATEWAY_TOKEN: "g".repeat(32),
      MODELGATE_GRPC_ALLOW_INSECURE: "true",
    };
    const config = loadConfig({ ...required, MODELGATE_SECRETS_KEY: key.toString("base64") });
    expect(config.secretsKey).toEqual(key);
    expect(redactConfig(config).secretsKey).toBe("[set]");
    expect(JSON.stringify(redactConfig(config))).not.toContain(key.toString("base64"));
    expect(() => loadConfig({ ...required, MODELGATE_SECRETS_KEY: "too-short" })).toThrow("MODELGATE_SECRETS_KEY");
    expect(loadConfig(required).secretsKey).toBeUndefined();
  });
});
