// What the image can run, by the name the container's command gives, and
// where each answers a health check. Shared by the entrypoint and the
// health check so the two can never disagree about an app.

/** Paths are relative to the image's /app (this file lives in /app/bin). */
const APP_ROOT = new URL("../", import.meta.url);

/**
 * `health`: how `healthcheck.mjs` finds the app's liveness endpoint from the
 * container's environment (the same variables and defaults as the app's
 * config); undefined where the app has no HTTP listener.
 */
export const APPS = {
  "control-plane": {
    main: "apps/control-plane/dist/main.js",
    summary: "the control plane (admin API, configuration push, audit workers); applies migrations at start",
    health: {
      host: "MODELGATE_CONTROL_PLANE_HOST",
      port: "MODELGATE_CONTROL_PLANE_PORT",
      defaultPort: 8081,
      path: "/healthz",
    },
  },
  gateway: {
    main: "apps/gateway/dist/main.js",
    summary: "the gateway (data plane: clients in, agents' tunnels in)",
    health: { host: "MODELGATE_GATEWAY_HOST", port: "MODELGATE_GATEWAY_PORT", defaultPort: 8080, path: "/healthz" },
  },
  agent: {
    main: "apps/agent/dist/main.js",
    summary: "an agent (beside a model runtime, dials out to the gateways)",
    // No listener of its own yet: healthy while its process runs.
    health: undefined,
  },
  migrate: {
    main: "packages/db/dist/cli.js",
    summary: "apply pending database migrations to DATABASE_URL, then exit",
    health: undefined,
  },
  "runtime-fixture": {
    main: "packages/runtime-fixture/dist/cli.js",
    summary: "the demo runtime: a stand-in model server (OpenAI, Ollama, TGI protocols; HOST, PORT, MODELS)",
    health: { host: "HOST", port: "PORT", defaultPort: undefined, path: "/health" },
  },
};

export function appModuleUrl(name) {
  return new URL(APPS[name].main, APP_ROOT);
}
