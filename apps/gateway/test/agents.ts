// Agents for end-to-end tests: in this process (fast, inspectable) or as a
// child process running the built agent (so it can be killed for real).
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { startAgent } from "@modelgate/agent";
import type { ClientTlsFiles } from "@modelgate/protocol";
import { captureLogger, RUNTIME_API_KEY } from "./stack.js";

export interface StartAgentOptions {
  id: string;
  token: string;
  gatewayAddress: string;
  runtimeUrl: string;
  name?: string;
  capacity?: number;
  /** Run the built agent (`dist/main.js`) in a child process. */
  process?: boolean;
  tls?: ClientTlsFiles;
}

const AGENT_MAIN = fileURLToPath(new URL("../../agent/dist/main.js", import.meta.url));

export async function startTestAgent(options: StartAgentOptions) {
  if (options.process) return startAgentProcess(options);
  const { logger, lines } = captureLogger("agent");
  const agent = startAgent({
    gateways: [{ address: options.gatewayAddress, tls: Boolean(options.tls) }],
    tunnelTls: options.tls,
    token: options.token,
    runtimeUrl: options.runtimeUrl,
    runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 500,
    capacity: options.capacity ?? 8,
    version: "test",
    logger,
    reconnectBackoff: { initialMs: 50, maxMs: 500 },
  });
  return {
    id: options.id,
    kind: "in-process" as const,
    agent,
    logs: lines,
    child: undefined as ChildProcess | undefined,
    exited: undefined as Promise<unknown[]> | undefined,
    stop: () => agent.close(),
  };
}

async function startAgentProcess(options: StartAgentOptions) {
  const child = spawn(process.execPath, [AGENT_MAIN], {
    env: {
      PATH: process.env.PATH,
      MODELGATE_GATEWAY_URLS: `grpc://${options.gatewayAddress}`,
      MODELGATE_AGENT_TOKEN: options.token,
      MODELGATE_RUNTIME_URL: options.runtimeUrl,
      MODELGATE_RUNTIME_API_KEY: RUNTIME_API_KEY,
      MODELGATE_AGENT_CAPACITY: String(options.capacity ?? 8),
      MODELGATE_DRAIN_TIMEOUT_MS: "5000",
      MODELGATE_AGENT_OPS_PORT: "0",
      LOG_LEVEL: "debug",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  child.stdout?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  const exited: Promise<unknown[]> = once(child, "exit");
  return {
    id: options.id,
    kind: "process" as const,
    agent: undefined,
    logs: lines,
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}
