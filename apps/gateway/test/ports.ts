// Ports for test services that are stopped and started again on the same
// port (a gateway restarted for its agents to come back, a Redis or Postgres
// restarted under a gateway). They come from below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range, 32768-60999 by default): a port from
// `listen(0)` is ephemeral, and while its service is down any outgoing
// connection of any process on the machine may take it as its local port,
// so the restart fails with EADDRINUSE.
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const FALLBACK_EPHEMERAL_START = 32768;
const LOWEST = 20000;

function ephemeralStart(): number {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    return start && start > LOWEST + 1000 ? start : FALLBACK_EPHEMERAL_START;
  } catch {
    return FALLBACK_EPHEMERAL_START;
  }
}

const highest = ephemeralStart();
/** Ports this process handed out: two services of one test must never be given the same one. */
const handedOut = new Set<number>();

/** A port below the ephemeral range that was free on 127.0.0.1 a moment ago. */
export async function restartablePort(): Promise<number> {
  for (;;) {
    const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST));
    if (handedOut.has(port)) continue;
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (!bound) continue;
    server.close();
    await once(server, "close");
    handedOut.add(port);
    return port;
  }
}
