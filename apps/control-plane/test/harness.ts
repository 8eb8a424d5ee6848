import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { createLogger, generateSecret } from "@modelgate/core";
import { createDatabaseClient, type Database } from "@modelgate/db";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { createApp } from "../src/app.js";
import type { ConsoleOptions } from "../src/console/index.js";
import { startConfigPublisher } from "../src/gateway-link/publisher.js";
import { type AuthenticatorOptions, createAuthenticator } from "../src/http/auth.js";

/** A control plane on its own fresh database, listening on a loopback port. */
export interface RunningControlPlane {
  url: string;
  adminToken: string;
  db: Database;
  database: TestDatabase;
  /** Every JSON log line the app wrote so far. */
  logLines(): string[];
  close(): Promise<void>;
}

export async function startControlPlane(
  options: {
    databaseUrl?: string;
    oidc?: AuthenticatorOptions["oidc"];
    adminToken?: string;
    /** The web console; its admin-token sign-in uses `adminToken` unless this says otherwise. */
    console?: Partial<ConsoleOptions>;
    /** Listen on this loopback port instead of any free one (an IdP's redirect URI names it). */
    port?: number;
  } = {},
): Promise<RunningControlPlane> {
  const database = await createTestDatabase();
  const db = createDatabaseClient({ databaseUrl: options.databaseUrl ?? database.url, maxConnections: 4 });
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      callback();
    },
  });
  const adminToken = options.adminToken ?? generateSecret("mgadmin_");
  const logger = createLogger({ name: "control-plane", level: "info", destination });
  // No gateway listens here, but every change still goes through the real
  // publishing step.
  const config = await startConfigPublisher({ db, databaseUrl: options.databaseUrl ?? database.url, logger });
  const app = createApp({
    db,
    logger,
    authenticator: createAuthenticator({ adminToken, oidc: options.oidc }),
    version: "test",
    config,
    console: options.console && {
      dir: undefined,
      sessionHours: 8,
      adminToken,
      oidc: undefined,
      publicUrl: undefined,
      ...options.console,
    },
  });
  const server: Server = app.listen(options.port ?? 0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    adminToken,
    db,
    database,
    logLines: () => [...lines],
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await config.close();
      await db.$disconnect();
      await database.drop();
    },
  };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
  body: any;
  text: string;
}

/** A small JSON client bound to one control plane, authenticated as admin by default. */
export function apiClient(cp: RunningControlPlane) {
  return async function call(
    method: string,
    path: string,
    options: { body?: unknown; rawBody?: string; token?: string | null; contentType?: string } = {},
  ): Promise<ApiResponse> {
    const headers: Record<string, string> = {};
    const token = options.token === undefined ? cp.adminToken : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (options.rawBody !== undefined) payload = options.rawBody;
    else if (options.body !== undefined) payload = JSON.stringify(options.body);
    if (payload !== undefined) headers["content-type"] = options.contentType ?? "application/json";
    const response = await fetch(`${cp.url}${path}`, { method, headers, body: payload });
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, body, text };
  };
}

/** Asserts the RFC 9457 problem shape with a stable code. */
export function expectProblem(response: ApiResponse, status: number, code: string): void {
  expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(response.body).toEqual(
    expect.objectContaining({
      type: `urn:modelgate:problem:${code}`,
      title: expect.any(String),
      status,
      code,
      detail: expect.any(String),
      requestId: response.headers.get("x-request-id"),
    }),
  );
}
