// The agent tunnel over TLS, with client certificates required (mutual TLS).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Stack, startStack, waitFor } from "./stack.js";

let dir: string;
let stack: Stack;

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(): Record<"ca" | "serverCert" | "serverKey" | "clientCert" | "clientKey", string> {
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=modelgate test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  );
  for (const [name, subject, extensions] of [
    ["server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"],
    ["client", "/CN=agent", "extendedKeyUsage=clientAuth"],
  ] as const) {
    writeFileSync(file(`${name}.ext`), `${extensions}\n`);
    openssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      subject,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
    );
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      file(`${name}.ext`),
      "-out",
      file(`${name}.pem`),
    );
  }
  return {
    ca: file("ca.pem"),
    serverCert: file("server.pem"),
    serverKey: file("server.key"),
    clientCert: file("client.pem"),
    clientKey: file("client.key"),
  };
}

let certs: ReturnType<typeof makeCertificates>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "mg-tls-"));
  certs = makeCertificates();
  stack = await startStack({
    tunnelTls: { certFile: certs.serverCert, keyFile: certs.serverKey, clientCaFile: certs.ca },
  });
});

afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("tunnel TLS", () => {
  it("carries requests for an agent that verifies the gateway and presents its certificate", async () => {
    const runtime = await stack.addConnection("llama");
    await stack.addAgent("llama", runtime, {
      tls: { caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey },
    });
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "over TLS" }] }),
    });
    expect(response.status).toBe(200);
  });

  it("refuses an agent without a client certificate, even with a valid token", async () => {
    await stack.addConnection("other");
    const { token, id } = await stack.issueAgentToken("other", "no-cert");
    const { startTestAgent } = await import("./agents.js");
    const agent = await startTestAgent({
      id,
      token,
      gatewayAddress: stack.gateway.tunnelAddress,
      runtimeUrl: "http://127.0.0.1:9",
      tls: { caFile: certs.ca },
    });
    try {
      await expect(
        waitFor(() => [...stack.gateway.pool.tunnels()].some((tunnel) => tunnel.agentId === id), {
          timeoutMs: 1_500,
          what: "a tunnel that must never open",
        }),
      ).rejects.toThrow(/timed out/);
      expect(agent.logs.some((line) => line.includes("gateway tunnel closed"))).toBe(true);
    } finally {
      await agent.stop();
    }
  });
});
