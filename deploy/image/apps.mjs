// What the image can run, by the name the container's command gives, and
// where each answers a health check. Shared by the entrypoint and the
// health check so the two can never disagree about an app.

/** Paths are relative to the image's /app (this file lives in /app/bin). */
const APP_ROOT = new URL("../", import.meta.url);

/**
 * `health`: where `healthcheck.mjs` asks whether the app is ready, read from
 * the container's environment with the same variables and defaults as the
 * app's config: the ops listener's `/readyz` (docs/operations.md), which
 * stays on the container's loopback by default and is reached from inside
 * it. Undefined for a one-shot command.
 */
export const APPS = {
  "control-plane": {
    main: "apps/control-plane/dist/main.js",
    summary: "the control plane (admin API, configuration push, audit workers); applies migrations at start",
    health: {
      host: "MODELGATE_CONTROL_PLANE_OPS_HOST",
      port: "MODELGATE_CONTROL_PLANE_OPS_PORT",
      defaultPort: 9081,
      path: "/readyz",
    },
  },
  gateway: {
    main: "apps/gateway/dist/main.js",
    summary: "the gateway (data plane: clients in, agents' tunnels in)",
    health: {
      host: "MODELGATE_GATEWAY_OPS_HOST",
      port: "MODELGATE_GATEWAY_OPS_PORT",
      defaultPort: 9080,
      path: "/readyz",
    },
  },
  agent: {
    main: "apps/agent/dist/main.js",
    summary: "an agent (beside a model runtime, dials out to the gateways)",
    health: { host: "MODELGATE_AGENT_OPS_HOST", port: "MODELGATE_AGENT_OPS_PORT", defaultPort: 9082, path: "/readyz" },
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
