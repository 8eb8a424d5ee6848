import path from "node:path";
import { loadConfig } from "./config.js";

const TOKEN = { MODELGATE_GATEWAY_TOKEN: "g".repeat(32), MODELGATE_REDIS_URL: "redis://127.0.0.1:6379" };

describe("gateway config", () => {
  it("has safe defaults: loopback listeners, 10 MiB bodies, no wait for absent agents", () => {
    expect(loadConfig(TOKEN)).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      ops: { host: "127.0.0.1", port: 9080 },
      tunnelHost: "127.0.0.1",
      tunnelPort: 8443,
      tunnelTls: undefined,
      controlPlane: { target: { address: "127.0.0.1:8082", tls: false } },
      maxBodyBytes: 10 * 1024 * 1024,
      maxHeaderBytes: 64 * 1024,
      agentWaitMs: 0,
    });
  });

  it("reads the ops listener's address and keeps it off the public port", () => {
    expect(
      loadConfig({ ...TOKEN, MODELGATE_GATEWAY_OPS_HOST: "0.0.0.0", MODELGATE_GATEWAY_OPS_PORT: "0" }).ops,
    ).toEqual({ host: "0.0.0.0", port: 0 });
    expect(() => loadConfig({ ...TOKEN, MODELGATE_GATEWAY_OPS_PORT: "8080" })).toThrow(/MODELGATE_GATEWAY_OPS_PORT/);
    expect(() => loadConfig({ ...TOKEN, MODELGATE_GATEWAY_OPS_PORT: "70000" })).toThrow(/MODELGATE_GATEWAY_OPS_PORT/);
  });

  it("requires the gateway token", () => {
    expect(() => loadConfig({ MODELGATE_REDIS_URL: TOKEN.MODELGATE_REDIS_URL })).toThrow(/MODELGATE_GATEWAY_TOKEN/);
  });

  it("requires Redis for the audit queue and fails closed unless told otherwise", () => {
    expect(() => loadConfig({ MODELGATE_GATEWAY_TOKEN: TOKEN.MODELGATE_GATEWAY_TOKEN })).toThrow(
      /MODELGATE_REDIS_URL is required/,
    );
    expect(loadConfig(TOKEN).audit).toEqual({
      queuePrefix: "bull",
      failOpen: false,
      maxBodyBytes: 4 * 1024 * 1024,
      bufferRecords: 10_000,
      bufferBytes: 256 * 1024 * 1024,
      logPrompts: false,
      // Records wait on disk while Redis is away; relative paths are resolved once, at start.
      spool: { dir: path.resolve(".data/audit-spool"), maxBytes: 1024 * 1024 * 1024 },
    });
    expect(loadConfig({ ...TOKEN, MODELGATE_AUDIT_SPOOL_DIR: "/var/lib/modelgate/spool" }).audit.spool.dir).toBe(
      "/var/lib/modelgate/spool",
    );
    expect(() => loadConfig({ ...TOKEN, MODELGATE_AUDIT_SPOOL_MAX_BYTES: "1000" })).toThrow(
      /MODELGATE_AUDIT_SPOOL_MAX_BYTES/,
    );
    expect(loadConfig({ ...TOKEN, MODELGATE_AUDIT_FAIL_OPEN: "true" }).audit.failOpen).toBe(true);
    expect(() => loadConfig({ ...TOKEN, MODELGATE_AUDIT_BUFFER_RECORDS: "0" })).toThrow(
      /MODELGATE_AUDIT_BUFFER_RECORDS/,
    );
    expect(() => loadConfig({ ...TOKEN, MODELGATE_AUDIT_QUEUE_PREFIX: "a:b" })).toThrow(/MODELGATE_AUDIT_QUEUE_PREFIX/);
  });

  it("refuses a plaintext tunnel listener off loopback unless allowed", () => {
    expect(() => loadConfig({ ...TOKEN, MODELGATE_TUNNEL_HOST: "0.0.0.0" })).toThrow(/plaintext gRPC/);
    expect(
      loadConfig({ ...TOKEN, MODELGATE_TUNNEL_HOST: "0.0.0.0", MODELGATE_TUNNEL_ALLOW_INSECURE: "true" }),
    ).toMatchObject({ tunnelHost: "0.0.0.0" });
    expect(
      loadConfig({
        ...TOKEN,
        MODELGATE_TUNNEL_HOST: "0.0.0.0",
        MODELGATE_TUNNEL_TLS_CERT_FILE: "/c.pem",
        MODELGATE_TUNNEL_TLS_KEY_FILE: "/k.pem",
        MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE: "/ca.pem",
      }).tunnelTls,
    ).toEqual({ certFile: "/c.pem", keyFile: "/k.pem", clientCaFile: "/ca.pem" });
    expect(() => loadConfig({ ...TOKEN, MODELGATE_TUNNEL_TLS_CLIENT_CA_FILE: "/ca.pem" })).toThrow(/needs/);
  });

  it("refuses a plaintext control-plane URL off loopback and bad limits", () => {
    expect(() => loadConfig({ ...TOKEN, MODELGATE_CONTROL_PLANE_GRPC_URL: "grpc://cp.internal:8082" })).toThrow(
      /plaintext gRPC/,
    );
    expect(
      loadConfig({ ...TOKEN, MODELGATE_CONTROL_PLANE_GRPC_URL: "grpcs://cp.internal:8082" }).controlPlane.target,
    ).toEqual({ address: "cp.internal:8082", host: "cp.internal", tls: true });
    expect(() => loadConfig({ ...TOKEN, MODELGATE_MAX_BODY_BYTES: "12" })).toThrow(/MODELGATE_MAX_BODY_BYTES/);
    // Below 32 KiB an access token of the accepted size could be cut off by Node with a 431.
    expect(() => loadConfig({ ...TOKEN, MODELGATE_MAX_HEADER_BYTES: "16384" })).toThrow(/MODELGATE_MAX_HEADER_BYTES/);
    expect(loadConfig({ ...TOKEN, MODELGATE_MAX_HEADER_BYTES: "131072" }).maxHeaderBytes).toBe(131_072);
    expect(() => loadConfig({ ...TOKEN, MODELGATE_GATEWAY_PORT: "70000" })).toThrow(/MODELGATE_GATEWAY_PORT/);
  });
});
