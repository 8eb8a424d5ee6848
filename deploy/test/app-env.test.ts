import { unknownVariables, variablesRead } from "./app-env.js";

describe("variablesRead", () => {
  it("finds what each app's configuration reads, including the OIDC settings and secret files", () => {
    const gateway = variablesRead("gateway");
    for (const name of ["MODELGATE_GATEWAY_PORT", "MODELGATE_GATEWAY_TOKEN_FILE", "MODELGATE_REDIS_URL", "LOG_LEVEL"]) {
      expect(gateway).toContain(name);
    }
    for (const name of ["OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_COOLDOWN_MS"]) expect(gateway).toContain(name);
    expect(variablesRead("control-plane")).toContain("MODELGATE_ADMIN_TOKEN_FILE");
    expect(variablesRead("agent")).toContain("MODELGATE_AGENT_TOKEN_FILE");
    expect(variablesRead("runtime-fixture")).toEqual(
      new Set(["HOST", "PORT", "MODELS", "STREAM_CHUNKS", "CHUNK_INTERVAL_MS", "REQUIRED_BEARER", "LABEL"]),
    );
    // What one app reads is not what another does.
    expect(variablesRead("agent")).not.toContain("MODELGATE_GATEWAY_PORT");
  });

  it("names the variables an app would ignore", () => {
    expect(unknownVariables("gateway", ["MODELGATE_GATEWAY_PORT", "MODELGATE_GATEWAY_PROT", "NODE_OPTIONS"])).toEqual([
      "MODELGATE_GATEWAY_PROT",
    ]);
    expect(unknownVariables("migrate", ["DATABASE_URL", "MODELGATE_REDIS_URL"])).toEqual(["MODELGATE_REDIS_URL"]);
  });
});
