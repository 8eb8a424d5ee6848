// Everything the console talks to, real and on loopback: an OpenID provider
// (oidc-provider) people sign in at, the control plane on a fresh database
// serving the built console, a gateway, an agent and a runtime that speaks
// the OpenAI protocol. Composed in one process as `npm start` composes them
// (apps/quickstart); the browser is a separate Chromium.
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { startAgent } from "@modelgate/agent";
import { createStoreTransport } from "@modelgate/audit";
import { startControlPlane, VERSION } from "@modelgate/control-plane";
import { createLogger } from "@modelgate/core";
import { createTestDatabase } from "@modelgate/db/testing";
import { startGateway } from "@modelgate/gateway";
import { oidcOptionsFromEnv } from "@modelgate/identity";
import { startTestIdentityProvider } from "@modelgate/identity/testing";
import { startRuntimeFixture } from "@modelgate/runtime-fixture";

const CONSOLE_DIR = fileURLToPath(new URL("../dist", import.meta.url));
const CONSOLE_CLIENT_ID = "modelgate-console";

/** People of the test identity provider, one per role, and one with none. */
export const PEOPLE = {
  admin: { subject: "alice", email: "alice@example.com", groups: ["platform"] },
  auditor: { subject: "ivan", email: "ivan@example.com", groups: ["audit"] },
  approver: { subject: "sam", email: "sam@example.com", groups: ["security"] },
  nobody: { subject: "nora", email: "nora@example.com", groups: ["marketing"] },
} as const;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export type ConsoleStack = Awaited<ReturnType<typeof startConsoleStack>>;

export async function startConsoleStack() {
  const silent = (name: string) => createLogger({ name, level: "silent" });
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const database = await createTestDatabase();
    closers.push(() => database.drop());
    // The console's address must be known before the identity provider
    // registers its redirect URI and before the control plane starts.
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const idp = await startTestIdentityProvider({
      webClient: { clientId: CONSOLE_CLIENT_ID, redirectUri: `${publicUrl}/console/auth/callback` },
    });
    closers.push(() => idp.close());
    for (const person of Object.values(PEOPLE)) idp.addAccount({ ...person, groups: [...person.groups] });

    const adminToken = `mgadmin_${randomBytes(24).toString("base64url")}`;
    const gatewayToken = `mggateway_${randomBytes(24).toString("base64url")}`;
    const oidc = oidcOptionsFromEnv({
      OIDC_ISSUER: idp.issuer,
      OIDC_AUDIENCE: idp.audience,
      OIDC_ALLOW_INSECURE_HTTP: "true",
    });
    if (!oidc) throw new Error("the test identity provider's settings were refused");
    const controlPlane = await startControlPlane({
      host: "127.0.0.1",
      port,
      ops: { host: "127.0.0.1", port: 0 },
      processMetrics: false,
      grpc: { host: "127.0.0.1", port: 0 },
      databaseUrl: database.url,
      dbPoolSize: 5,
      inProcessAudit: true,
      adminToken,
      gatewayToken,
      oidc: {
        verifier: oidc,
        roleGroups: { admin: ["platform"], auditor: ["audit"], approver: ["security"] },
      },
      console: {
        oidc: {
          issuer: idp.issuer,
          clientId: CONSOLE_CLIENT_ID,
          clientSecret: undefined,
          scope: "openid",
          redirectUri: `${publicUrl}/console/auth/callback`,
          allowInsecureRequests: true,
        },
        publicUrl,
        sessionHours: 8,
        dir: CONSOLE_DIR,
      },
      approvals: { urlBase: `${publicUrl}/console/approvals` },
      version: VERSION,
      logger: silent("control-plane"),
    });
    closers.push(() => controlPlane.close());

    // An answer with an address in it, masked at the source; slow enough to watch it replay.
    const runtime = await startRuntimeFixture({
      models: ["demo-chat"],
      streamChunks: 12,
      chunkIntervalMs: 100,
      completionText: "Sure. I will write to bob@example.com today with the quarterly plan attached.",
    });
    closers.push(() => runtime.close());
    const gateway = await startGateway({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      tunnelHost: "127.0.0.1",
      tunnelPort: 0,
      controlPlane: { address: controlPlane.grpcAddress, token: gatewayToken },
      maxBodyBytes: 1024 * 1024,
      upstreamTimeoutMs: 30_000,
      queueWaitMs: 5_000,
      agentWaitMs: 0,
      oidc,
      audit: { transport: createStoreTransport({ store: controlPlane.auditStore, logger: silent("audit") }) },
      version: VERSION,
      logger: silent("gateway"),
      processMetrics: false,
    });
    closers.push(() => gateway.close(0));

    const admin = async (method: string, path: string, body?: unknown) => {
      const answer = await fetch(`${publicUrl}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await answer.text();
      if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };

    // Provisioned through the API, as an operator would.
    await admin("POST", "/connections", { name: "llama", protocol: "openai", models: ["demo-chat"] });
    const issued = (await admin("POST", "/connections/llama/agents", { name: "gpu-1" })) as {
      id: string;
      token: string;
    };
    const callerKey = await admin("POST", "/api-keys", { name: "research-bot", groups: ["research"] });
    await admin("POST", "/policies", {
      name: "research",
      subjects: { groups: ["research"] },
      resources: [{ connection: "llama" }],
      operations: ["inference", "models.list"],
      promptRules: [
        {
          pattern: "export (all|every) customer records?",
          flags: "i",
          action: "require_approval",
          description: "bulk customer export",
        },
      ],
      masking: { entities: ["EMAIL"] },
      approval: { approverGroups: ["security"], minApprovals: 1, grant: "request", expiresMinutes: 60 },
    });
    await gateway.configured();
    const waitUntil = async (check: () => boolean, what: string) => {
      const deadline = Date.now() + 15_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    // An agent that dials before its token reached the gateway is refused and backs off.
    await waitUntil(() => gateway.store.agentById(issued.id) !== undefined, "the agent token to reach the gateway");
    const agent = startAgent({
      gateways: [{ address: gateway.tunnelAddress, tls: false }],
      token: issued.token,
      runtimeUrl: runtime.url,
      runtimeCredential: undefined,
      runtimeHealthPath: "/health",
      capacity: 8,
      version: VERSION,
      logger: silent("agent"),
      processMetrics: false,
    });
    closers.push(() => agent.drain(0));
    await agent.connected();

    return {
      consoleUrl: `${publicUrl}/console/`,
      controlPlaneUrl: publicUrl,
      gatewayUrl: gateway.url,
      adminToken,
      callerKey: callerKey.key as string,
      idp,
      admin,
      runtime,
      /** Ends every console session now, as their expiry would. */
      async expireConsoleSessions() {
        await controlPlane.db.consoleSession.updateMany({ data: { expiresAt: new Date(Date.now() - 1_000) } });
      },
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => {});
    throw error;
  }
}
