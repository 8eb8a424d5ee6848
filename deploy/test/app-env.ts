// Which environment variables each app reads, found by running the app's own
// configuration loader against an environment that records every lookup.
// Deployment files (compose, Kubernetes manifests) are checked against it, so
// a misspelt or retired variable there fails a test instead of being
// silently ignored by the app it was meant for.
import { loadConfig as loadAgentConfig } from "@modelgate/agent";
import { loadConfig as loadControlPlaneConfig } from "@modelgate/control-plane";
import { loadConfig as loadGatewayConfig } from "@modelgate/gateway";
import { optionsFromEnv as loadRuntimeFixtureOptions } from "@modelgate/runtime-fixture";

/** The image's apps (deploy/image/apps.mjs), by the name its command takes. */
export type AppName = "control-plane" | "gateway" | "agent" | "migrate" | "runtime-fixture";

type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Each loader with the smallest environment it accepts. Every loader reads
 * all of its variables before it judges any (zod reads the whole schema;
 * the OIDC settings are read to find stray ones), so a valid minimum is
 * enough to see them all.
 */
const LOADERS: Record<Exclude<AppName, "migrate">, { load: (env: Environment) => unknown; minimal: Environment }> = {
  "control-plane": {
    load: loadControlPlaneConfig,
    minimal: {
      DATABASE_URL: "postgresql://db/modelgate",
      MODELGATE_ADMIN_TOKEN: "a".repeat(32),
      MODELGATE_GATEWAY_TOKEN: "g".repeat(32),
    },
  },
  gateway: {
    load: loadGatewayConfig,
    minimal: { MODELGATE_GATEWAY_TOKEN: "g".repeat(32), MODELGATE_REDIS_URL: "redis://redis:6379" },
  },
  agent: {
    load: loadAgentConfig,
    minimal: {
      MODELGATE_GATEWAY_URLS: "grpc://127.0.0.1:8443",
      MODELGATE_AGENT_TOKEN: `mgagent_${"a".repeat(40)}`,
      MODELGATE_RUNTIME_URL: "http://127.0.0.1:8000",
    },
  },
  "runtime-fixture": { load: loadRuntimeFixtureOptions, minimal: {} },
};

/** packages/db/src/cli.ts reads this one variable directly. */
const MIGRATE_VARIABLES = ["DATABASE_URL"];

/** Read by Node.js itself, in every app. */
const RUNTIME_VARIABLES: ReadonlySet<string> = new Set(["NODE_ENV", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "TZ"]);

const cache = new Map<AppName, ReadonlySet<string>>();

/** Every variable `app` looks up when it reads its configuration. */
export function variablesRead(app: AppName): ReadonlySet<string> {
  let variables = cache.get(app);
  if (variables === undefined) {
    if (app === "migrate") {
      variables = new Set(MIGRATE_VARIABLES);
    } else {
      const { load, minimal } = LOADERS[app];
      const read = new Set<string>();
      const note = (key: string | symbol) => {
        if (typeof key === "string" && /^[A-Z][A-Z0-9_]*$/.test(key)) read.add(key);
      };
      load(
        new Proxy(minimal, {
          get(target, key) {
            note(key);
            return Reflect.get(target, key);
          },
          has(target, key) {
            note(key);
            return Reflect.has(target, key);
          },
        }),
      );
      variables = read;
    }
    cache.set(app, variables);
  }
  return variables;
}

/** Names in `env` that `app` would never read (Node's own variables aside). */
export function unknownVariables(app: AppName, env: Iterable<string>): string[] {
  const known = variablesRead(app);
  return [...env].filter((name) => !known.has(name) && !RUNTIME_VARIABLES.has(name));
}
