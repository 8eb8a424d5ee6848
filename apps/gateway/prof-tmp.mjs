import { Writable } from "node:stream";
import http from "node:http";
import { createLogger, generateSecret } from "@modelgate/core";
import { startControlPlane } from "@modelgate/control-plane";
import { createTestDatabase } from "@modelgate/db/testing";
import { startGateway } from "@modelgate/gateway";
import { startAgent } from "@modelgate/agent";
import { startRuntimeFixture } from "@modelgate/runtime-fixture";

const sink = new Writable({ write(_c, _e, cb) { cb(); } });
const logger = createLogger({ name: "x", level: process.env.LVL ?? "info", destination: sink });
const database = await createTestDatabase();
const adminToken = generateSecret("mgadmin_"), gatewayToken = generateSecret("mggateway_");
const cp = await startControlPlane({ host: "127.0.0.1", port: 0, grpc: { host: "127.0.0.1", port: 0 }, databaseUrl: database.url, dbPoolSize: 4, adminToken, gatewayToken, version: "t", logger });
const admin = async (m, p, b) => (await fetch(`${cp.url}/api/v1${p}`, { method: m, headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" }, body: b && JSON.stringify(b) })).json();
const fixture = await startRuntimeFixture({ models: ["demo-chat"] });
await admin("POST", "/connections", { name: "llama", protocol: "openai", models: ["demo-chat"] });
const key = (await admin("POST", "/api-keys", { name: "k", groups: [] })).key;
const gw = await startGateway({ host: "127.0.0.1", port: 0, tunnelHost: "127.0.0.1", tunnelPort: 0, controlPlane: { address: cp.grpcAddress, token: gatewayToken }, maxBodyBytes: 1e7, upstreamTimeoutMs: 30000, queueWaitMs: 1000, agentWaitMs: 1000, version: "t", logger, processMetrics: false });
await gw.configured();
const { token } = await admin("POST", "/connections/llama/agents", { name: "a" });
await new Promise((r) => setTimeout(r, 300));
const agent = startAgent({ gateways: [{ address: gw.tunnelAddress, tls: false }], token, runtimeUrl: fixture.url, runtimeHealthPath: "/health", capacity: 64, version: "t", logger });
await agent.connected();
await new Promise((r) => setTimeout(r, 300));

const agentPool = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "hi" }] });
function once(base, auth) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = http.request({ host: u.hostname, port: u.port, path: "/v1/chat/completions", method: "POST", agent: agentPool, headers: { "content-type": "application/json", authorization: auth } }, (res) => { res.resume(); res.on("end", resolve); });
    req.on("error", reject); req.end(body.replace("llama/", base === fixture.url ? "" : "llama/"));
  });
}
async function measure(name, base, auth, n) {
  for (let i = 0; i < 200; i++) await once(base, auth);
  const c0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < n; i++) await once(base, auth);
  const c = process.cpuUsage(c0); const t = performance.now() - t0;
  console.log(name, "ms/req", (t / n).toFixed(3), "cpu ms/req", ((c.user + c.system) / 1000 / n).toFixed(3));
}
const N = Number(process.env.N ?? 2000);
await measure("direct", fixture.url, "Bearer x", N);
await measure("modelgate", gw.url, `Bearer ${key}`, N);
await measure("direct", fixture.url, "Bearer x", N);
await measure("modelgate", gw.url, `Bearer ${key}`, N);
await agent.close(); await gw.close(100); await cp.close(); await fixture.close(); await database.drop();
process.exit(0);
