import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateSecret } from "@modelgate/core";
import { gatewayLabel, loadConfig } from "./config.js";

const TOKEN = generateSecret("mgagent_");
const BASE = {
  MODELGATE_GATEWAY_URLS: "grpc://127.0.0.1:8443",
  MODELGATE_AGENT_TOKEN: TOKEN,
  MODELGATE_RUNTIME_URL: "http://127.0.0.1:8000",
};

describe("agent config", () => {
  it("reads one tunnel per gateway URL", () => {
    const config = loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: "grpc://127.0.0.1:8443, grpcs://gw2.example:443" });
    expect(config.gateways.map(gatewayLabel)).toEqual(["127.0.0.1:8443", "gw2.example:443"]);
    expect(config).toMatchObject({ capacity: 32, runtimeHealthPath: "/health", runtimeCredential: undefined });
  });

  it("reads DNS names that resolve to every gateway replica, beside fixed addresses", () => {
    const config = loadConfig({
      ...BASE,
      MODELGATE_GATEWAY_URLS:
        "dns:///gateway-tunnel.modelgate.svc:8443, dns+grpc:///localhost:9443, dns+grpcs:///[::1]:7443, grpc://127.0.0.1:1",
    });
    expect(config.gateways).toEqual([
      { kind: "dns", host: "gateway-tunnel.modelgate.svc", port: 8443, tls: true },
      { kind: "dns", host: "localhost", port: 9443, tls: false },
      { kind: "dns", host: "::1", port: 7443, tls: true },
      { address: "127.0.0.1:1", tls: false },
    ]);
    expect(config.gateways.map(gatewayLabel)).toEqual([
      "dns:///gateway-tunnel.modelgate.svc:8443",
      "dns+grpc:///localhost:9443",
      "dns:///[::1]:7443",
      "127.0.0.1:1",
    ]);
    // Re-resolved every 10 s; reconnects wait at most 5 s, 60 s for a refused token.
    expect(config).toMatchObject({ resolveIntervalMs: 10_000, reconnect: { maxMs: 5_000, refusedMaxMs: 60_000 } });
  });

  it.each([
    ["dns://8.8.8.8/gw.example:8443", /no DNS server/],
    ["dns:///gw.example", /no DNS server|dns:\/\/\/name:port/],
    ["dns:///gw.example:99999", /name:port/],
    ["dns:///gw_example:8443", /name:port/],
    ["dns+grpc:///gw.example:8443", /plaintext gRPC/],
  ])("refuses the gateway URL %j", (url, message) => {
    expect(() => loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: url })).toThrow(message);
  });

  it("refuses a DNS name given twice, whatever its spelling", () => {
    expect(() =>
      loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: "dns:///gw.example:8443,dns+grpcs:///gw.example:8443" }),
    ).toThrow(/twice/);
  });

  it("bounds the resolve interval and reconnect waits", () => {
    expect(
      loadConfig({
        ...BASE,
        MODELGATE_GATEWAY_RESOLVE_INTERVAL_MS: "2000",
        MODELGATE_RECONNECT_MAX_MS: "1000",
        MODELGATE_RECONNECT_REFUSED_MAX_MS: "5000",
      }),
    ).toMatchObject({ resolveIntervalMs: 2_000, reconnect: { maxMs: 1_000, refusedMaxMs: 5_000 } });
    expect(() => loadConfig({ ...BASE, MODELGATE_GATEWAY_RESOLVE_INTERVAL_MS: "10" })).toThrow(
      /MODELGATE_GATEWAY_RESOLVE_INTERVAL_MS/,
    );
    expect(() => loadConfig({ ...BASE, MODELGATE_RECONNECT_MAX_MS: "0" })).toThrow(/MODELGATE_RECONNECT_MAX_MS/);
  });

  it("puts the ops listener on loopback port 9082 unless told otherwise", () => {
    expect(loadConfig(BASE).ops).toEqual({ host: "127.0.0.1", port: 9082 });
    expect(loadConfig({ ...BASE, MODELGATE_AGENT_OPS_HOST: "0.0.0.0", MODELGATE_AGENT_OPS_PORT: "0" }).ops).toEqual({
      host: "0.0.0.0",
      port: 0,
    });
    expect(() => loadConfig({ ...BASE, MODELGATE_AGENT_OPS_PORT: "-1" })).toThrow(/MODELGATE_AGENT_OPS_PORT/);
  });

  it("refuses plaintext to a remote gateway, duplicates and non-agent tokens", () => {
    expect(() => loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: "grpc://gw.example:8443" })).toThrow(/plaintext gRPC/);
    expect(
      loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: "grpc://gw.example:8443", MODELGATE_TUNNEL_ALLOW_INSECURE: "true" })
        .gateways,
    ).toHaveLength(1);
    expect(() => loadConfig({ ...BASE, MODELGATE_GATEWAY_URLS: "grpc://127.0.0.1:1,grpc://127.0.0.1:1" })).toThrow(
      /twice/,
    );
    expect(() => loadConfig({ ...BASE, MODELGATE_AGENT_TOKEN: "mg_notanagenttoken" })).toThrow(/not an agent token/);
    expect(() => loadConfig({ ...BASE, MODELGATE_AGENT_TOKEN: undefined })).toThrow(/MODELGATE_AGENT_TOKEN/);
  });

  it("reads the runtime credential from the environment or a file, never both", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mg-agent-"));
    const keyFile = path.join(dir, "key");
    writeFileSync(keyFile, "sk-from-file\n");
    expect(loadConfig({ ...BASE, MODELGATE_RUNTIME_API_KEY_FILE: keyFile }).runtimeCredential).toEqual({
      kind: "bearer",
      token: "sk-from-file",
    });
    expect(
      loadConfig({ ...BASE, MODELGATE_RUNTIME_HEADER_NAME: "X-Api-Key", MODELGATE_RUNTIME_HEADER_VALUE: "v" })
        .runtimeCredential,
    ).toEqual({ kind: "header", name: "X-Api-Key", value: "v" });
    expect(() =>
      loadConfig({ ...BASE, MODELGATE_RUNTIME_API_KEY: "a", MODELGATE_RUNTIME_API_KEY_FILE: keyFile }),
    ).toThrow(/not both/);
    expect(() => loadConfig({ ...BASE, MODELGATE_RUNTIME_HEADER_NAME: "X-Api-Key" })).toThrow(/VALUE is required/);
    expect(() => loadConfig({ ...BASE, MODELGATE_RUNTIME_API_KEY_FILE: path.join(dir, "missing") })).toThrow(
      /cannot read/,
    );
  });
});
