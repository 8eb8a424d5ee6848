// Prometheus metrics of the control plane, served on the ops listener. In a
// registry of its own, so a control plane and a gateway in one process (the
// zero-config launcher, tests) do not collide.
import type { RequestHandler, Response } from "express";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import { createWorkMetrics, type WorkMetrics } from "../ops/work-metrics.js";

export interface ControlPlaneMetrics {
  registry: Registry;
  /** Counts and times every HTTP request; mount it first. */
  http: RequestHandler;
  /** The background work: queues, workers, chain verification, SIEM deliveries. */
  work: WorkMetrics;
}

/** Methods Express routes; anything else is counted as `other`, so the label stays bounded. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Marks the route template a response belongs to (`/api/v1/connections/{name}`),
 * never the raw path: label values stay bounded whatever callers send.
 */
export function setRouteTemplate(res: Response, template: string): void {
  res.locals.routeTemplate = template;
}

export function createControlPlaneMetrics({
  processMetrics = true,
}: {
  processMetrics?: boolean;
} = {}): ControlPlaneMetrics {
  const registry = new Registry();
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: "modelgate_control_plane_" });
  const requests = new Counter({
    name: "modelgate_control_plane_http_requests_total",
    help: "HTTP requests answered by the control plane, by method, route template and status code",
    labelNames: ["method", "route", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "modelgate_control_plane_http_request_duration_seconds",
    help: "Time from receiving a request to the end of its response, by method and route template",
    labelNames: ["method", "route"],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  return {
    registry,
    work: createWorkMetrics(registry),
    http(req, res, next) {
      const started = performance.now();
      // "close" comes for finished and for abandoned responses alike.
      res.once("close", () => {
        const method = METHODS.has(req.method) ? req.method : "other";
        // Refused before any route was reached: unauthenticated, unknown
        // path, unreadable body.
        const route = typeof res.locals.routeTemplate === "string" ? res.locals.routeTemplate : "unrouted";
        requests.inc({ method, route, code: String(res.statusCode) });
        duration.observe({ method, route }, (performance.now() - started) / 1000);
      });
      next();
    },
  };
}
