import { createLogger, type Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import express, { type Express } from "express";
import { pinoHttp } from "pino-http";
import type { CliLogin } from "./config.js";
import {
  CONSOLE_BASE_PATH,
  type ConsoleOptions,
  createConsole,
  defaultConsoleDir,
  withoutSignInCodes,
} from "./console/index.js";
import { adminAuditRoutes } from "./features/admin-audit/routes.js";
import { createAdminAuditService } from "./features/admin-audit/service.js";
import { agentRoutes } from "./features/agents/routes.js";
import { createAgentService } from "./features/agents/service.js";
import { alertRoutes } from "./features/alerts/routes.js";
import { createAlertService } from "./features/alerts/service.js";
import { apiKeyRoutes } from "./features/api-keys/routes.js";
import { createApiKeyService } from "./features/api-keys/service.js";
import { approvalRoutes } from "./features/approvals/routes.js";
import { type ApprovalService, createApprovalService } from "./features/approvals/service.js";
import { auditIntegrityRoutes } from "./features/audit-integrity/routes.js";
import { connectionRoutes } from "./features/connections/routes.js";
import { createConnectionService } from "./features/connections/service.js";
import { createExportEgress, type ExportEgress } from "./features/exporters/egress.js";
import { exporterRoutes } from "./features/exporters/routes.js";
import { createExporterService } from "./features/exporters/service.js";
import { policyRoutes } from "./features/policies/routes.js";
import { createPolicyService } from "./features/policies/service.js";
import { sessionRoutes } from "./features/sessions/routes.js";
import { createSessionService } from "./features/sessions/service.js";
import { usageRoutes } from "./features/usage/routes.js";
import { createUsageService } from "./features/usage/service.js";
import type { ConfigPublishing } from "./gateway-link/changes.js";
import type { PresenceRegistry } from "./gateway-link/presence.js";
import type { Authenticator } from "./http/auth.js";
import { type ControlPlaneMetrics, setRouteTemplate } from "./http/metrics.js";
import { buildOpenApiDocument } from "./http/openapi.js";
import { errorHandler, notFoundHandler } from "./http/problem.js";
import { assignRequestId } from "./http/request-id.js";
import { authenticate, mountRoutes, type Route } from "./http/route.js";
import { createSecretBox, type SecretBox } from "./secret-box.js";

export const API_BASE_PATH = "/api/v1";
/** Control-plane bodies are small configuration documents. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface ControlPlaneDeps {
  db: Database;
  logger: Logger;
  authenticator: Authenticator;
  version: string;
  /** Services that change what gateways enforce publish each change through it after committing. */
  config: ConfigPublishing;
  /** Live agent tunnel state reported by gateways; empty when none report. */
  presence?: PresenceRegistry;
  /** Seals exporter secrets; without it they are stored unsealed (see secret-box.ts). */
  secrets?: SecretBox;
  /** Counts requests for /metrics on the ops listener (server.ts). */
  metrics?: ControlPlaneMetrics;
  /** Where exporters may connect; without it, global unicast addresses only (no MODELGATE_EXPORT_ALLOW_CIDRS). */
  exportEgress?: ExportEgress;
  /**
   * The approvals service gateways open approvals through (server.ts starts
   * it with its expiry timers and events); without it, one that serves the
   * API alone, with URLs relative to this API.
   */
  approvals?: ApprovalService;
  /** How the CLI signs people in; without it the CLI asks for a token. */
  cliLogin?: CliLogin | undefined;
  /**
   * The web console at /console: its sign-in methods, session lifetime and
   * files. Without it: the installed console package's files, sessions of
   * 8 hours, and no way to sign in.
   */
  console?: ConsoleOptions | undefined;
}

/** Builds the control-plane HTTP app. It opens no socket: main.ts listens. */
export function createApp({
  db,
  logger,
  authenticator,
  version,
  config,
  presence,
  secrets,
  metrics,
  exportEgress,
  approvals = createApprovalService({ db, config, logger, urlBase: () => `${API_BASE_PATH}/approvals` }),
  cliLogin,
  console: consoleOptions = {
    dir: defaultConsoleDir(),
    sessionHours: 8,
    adminToken: undefined,
    oidc: undefined,
    publicUrl: undefined,
  },
}: ControlPlaneDeps): Express {
  const routes = apiRoutes({ db, config, presence, secrets, exportEgress, approvals, logger, metrics });
  const openApiDocument = buildOpenApiDocument(routes, { basePath: API_BASE_PATH, version });
  const webConsole = createConsole({ ...consoleOptions, db, authenticator, logger });

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  if (metrics) app.use(metrics.http);
  app.use(assignRequestId);
  app.use(
    pinoHttp({
      logger,
      genReqId: (_req, res) => res.locals.requestId,
      serializers: { req: withoutSignInCodes },
      autoLogging: { ignore: (req) => req.url === "/healthz" },
    }),
  );
  app.use((_req, res, next) => {
    // Responses can carry credentials shown once: no cache may keep them.
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    next();
  });

  // Liveness only: readiness (which names what is failing) and metrics are
  // on the ops listener, off the public port (server.ts).
  app.get("/healthz", (_req, res) => {
    setRouteTemplate(res, "/healthz");
    res.json({ status: "ok" });
  });

  const api = express.Router({ caseSensitive: true, strict: false });
  // The API description is public; everything after it needs a credential,
  // checked before the body is read.
  api.get("/openapi.json", (req, res) => {
    setRouteTemplate(res, `${req.baseUrl}/openapi.json`);
    res.json(openApiDocument);
  });
  // Public too: where `modelgate login` sends a person to sign in (the
  // identity provider and the CLI's public client id; no secret).
  api.get("/cli-login", (req, res) => {
    setRouteTemplate(res, `${req.baseUrl}/cli-login`);
    res.json({ oidc: cliLogin ?? null });
  });
  api.use(authenticate(authenticator, webConsole.sessionAuthenticator));
  api.use(express.json({ limit: MAX_BODY_BYTES, strict: true }));
  mountRoutes(api, routes);
  app.use(API_BASE_PATH, api);
  app.use(CONSOLE_BASE_PATH, webConsole.router);

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return app;
}

type ApiRouteDeps = Pick<
  ControlPlaneDeps,
  "db" | "config" | "presence" | "secrets" | "exportEgress" | "logger" | "metrics"
> & {
  approvals: ApprovalService;
};

/** Every route under /api/v1, bound to its service. */
function apiRoutes({ db, config, presence, secrets, exportEgress, approvals, logger, metrics }: ApiRouteDeps): Route[] {
  return [
    ...connectionRoutes(createConnectionService({ db, config })),
    ...agentRoutes(createAgentService({ db, config, ...(presence ? { presence } : {}) })),
    ...apiKeyRoutes(createApiKeyService({ db, config, approvals })),
    ...policyRoutes(createPolicyService({ db, config, approvals })),
    ...approvalRoutes(approvals),
    ...adminAuditRoutes(createAdminAuditService({ db })),
    ...sessionRoutes(createSessionService({ db })),
    ...usageRoutes(createUsageService({ db })),
    ...exporterRoutes(
      createExporterService({
        db,
        secrets: secrets ?? createSecretBox(undefined),
        egress: exportEgress ?? createExportEgress(),
        logger,
      }),
    ),
    ...alertRoutes(createAlertService({ db })),
    ...auditIntegrityRoutes({ db, onReport: metrics?.work.chainVerified }),
  ];
}

/**
 * The OpenAPI document of /api/v1, built without a database: services only
 * keep the client they are given, and no handler runs. The console's typed
 * client is generated from it (apps/console: npm run api:generate).
 */
export function describeApi(version: string): ReturnType<typeof buildOpenApiDocument> {
  const unused = new Proxy({} as Database, {
    get() {
      throw new Error("describeApi builds the document only: no route may run");
    },
  });
  const silent = createLogger({ name: "describe-api", level: "silent" });
  const config: ConfigPublishing = { publish: async () => {} };
  const approvals = createApprovalService({ db: unused, config, logger: silent, urlBase: () => "" });
  return buildOpenApiDocument(apiRoutes({ db: unused, config, logger: silent, approvals }), {
    basePath: API_BASE_PATH,
    version,
  });
}
