import { type HeaderPair, headerRecord, headersForRuntime, resolveRuntimePath } from "@modelgate/core";
import { type Dispatcher, Pool } from "undici";

/** How the agent proves itself to the runtime; never seen by callers. */
export type RuntimeCredential = { kind: "bearer"; token: string } | { kind: "header"; name: string; value: string };

interface RuntimeRequest {
  method: string;
  /** Path and query relative to the runtime's base URL, as the client asked. */
  path: string;
  headers: Iterable<HeaderPair>;
  body: Uint8Array;
  signal: AbortSignal;
}

export interface RuntimeClient {
  readonly origin: string;
  /** Sends a request to the runtime; throws UnsafePathError before any I/O for a path that would leave it. */
  send(request: RuntimeRequest): Promise<Dispatcher.ResponseData>;
  /** Whether the runtime's health endpoint answers with a 2xx within the timeout. */
  probe(path: string, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

const BODYLESS_METHODS = new Set(["GET", "HEAD"]);

export function createRuntimeClient({
  url,
  credential,
  connections = 128,
}: {
  url: string;
  credential?: RuntimeCredential | undefined;
  connections?: number;
}): RuntimeClient {
  const runtimeUrl = new URL(url);
  // The pool is bound to one origin: whatever path a request carries, undici
  // sends it to this host and port.
  const pool = new Pool(runtimeUrl.origin, {
    connections,
    keepAliveTimeout: 30_000,
    // Generations can take minutes; the gateway's deadline (propagated as an
    // abort signal) bounds them instead of a fixed idle timeout.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const basePath = runtimeUrl.pathname;

  function runtimeHeaders(headers: Iterable<HeaderPair>, hasBody: boolean): Record<string, string | string[]> {
    const result = headerRecord(headersForRuntime(headers));
    result["accept-encoding"] = "identity";
    if (!hasBody) delete result["content-type"];
    if (credential?.kind === "bearer") result.authorization = `Bearer ${credential.token}`;
    else if (credential?.kind === "header") result[credential.name.toLowerCase()] = credential.value;
    return result;
  }

  return {
    origin: runtimeUrl.origin,
    send({ method, path, headers, body, signal }) {
      const runtimePath = resolveRuntimePath(basePath, path);
      const hasBody = body.byteLength > 0 && !BODYLESS_METHODS.has(method);
      return pool.request({
        method: method as Dispatcher.HttpMethod,
        path: runtimePath,
        headers: runtimeHeaders(headers, hasBody),
        body: hasBody ? body : null,
        signal,
      });
    },
    async probe(path, timeoutMs) {
      try {
        const response = await pool.request({
          method: "GET",
          path: resolveRuntimePath(basePath, path),
          headers: runtimeHeaders([], false),
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body.dump();
        return response.statusCode >= 200 && response.statusCode < 300;
      } catch {
        return false;
      }
    },
    close: () => pool.close(),
  };
}
