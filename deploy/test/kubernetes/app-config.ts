// A container of the image, started as its manifest says: the environment
// it would get (Secrets replaced by values of the right shape), the files
// its volumes would hold (written to a scratch folder, and the variables'
// paths moved there), and the app's own configuration loader run on it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type AgentConfig, loadConfig as loadAgentConfig } from "@modelgate/agent";
import { type ControlPlaneConfig, loadConfig as loadControlPlaneConfig } from "@modelgate/control-plane";
import { type GatewayConfig, loadConfig as loadGatewayConfig } from "@modelgate/gateway";
import { APPS } from "../../image/apps.mjs";
import type { AppName } from "../app-env.js";
import type { KubeObject } from "./render.js";
import { type Container, type Pod, parseImage } from "./workloads.js";

/** The image deploy/Dockerfile builds, as the manifests name it before an overlay points it at a registry. */
const IMAGE_NAME = "modelgate";

/** The app a container of the image runs (its one argument), or undefined for other images. */
export function appOf(container: Container): AppName | "unknown" | undefined {
  if (parseImage(container.image).name !== IMAGE_NAME) return undefined;
  const app = container.args?.[0];
  return app !== undefined && Object.hasOwn(APPS, app) ? (app as AppName) : "unknown";
}

/** Secret name → the keys it holds. */
export type SecretCatalog = Map<string, Set<string>>;

/**
 * The Secrets deploy/kubernetes/README.md tells operators to create
 * (`kubectl … create secret generic NAME --from-literal=KEY=… --from-file=KEY=…`),
 * and those cert-manager Certificates in the render will create.
 */
export function secretCatalog(readme: string, objects: KubeObject[]): SecretCatalog {
  const catalog: SecretCatalog = new Map();
  const commands = readme.replace(/\\\n\s*/g, " ").split("\n");
  for (const command of commands) {
    const name = /create secret generic ([a-z0-9.-]+)/.exec(command)?.[1];
    if (!name) continue;
    const keys = [...command.matchAll(/--from-(?:literal|file)=([A-Za-z0-9._-]+)=/g)].map((match) => match[1] ?? "");
    catalog.set(name, new Set([...(catalog.get(name) ?? []), ...keys]));
  }
  for (const object of objects) {
    if (object.apiVersion.startsWith("cert-manager.io/") && object.kind === "Certificate") {
      catalog.set(object.spec.secretName, new Set(["tls.crt", "tls.key", "ca.crt"]));
    }
  }
  return catalog;
}

const PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/**
 * A value of the shape each Secret key holds, as the apps check it. A key
 * without one here fails the check: add its shape when adding the key.
 */
const SECRET_VALUES: Record<string, string> = {
  "database-url": "postgresql://modelgate:secret@postgres.example:5432/modelgate?sslmode=verify-full",
  "redis-url": "rediss://:secret@redis.example:6379",
  "admin-token": "a".repeat(64),
  "gateway-token": "g".repeat(64),
  "secrets-key": Buffer.alloc(32, 7).toString("base64"),
  "agent-token": `mgagent_${"A1b2".repeat(8)}`,
  "runtime-api-key": "r".repeat(48),
  "tls.crt": PEM_CERTIFICATE,
  "ca.crt": PEM_CERTIFICATE,
  "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
};

export type AppConfig =
  | { app: "gateway"; config: GatewayConfig }
  | { app: "control-plane"; config: ControlPlaneConfig }
  | { app: "agent"; config: AgentConfig }
  | { app: "migrate"; config: { databaseUrl: string } };

export interface Started {
  /** The environment the container gets, with Secrets' values and paths moved into the scratch folder. */
  env: Record<string, string>;
  /** Undefined when the app refused it (see problems). */
  loaded: AppConfig | undefined;
  problems: string[];
}

function secretValue(key: string): string | undefined {
  return Object.hasOwn(SECRET_VALUES, key) ? SECRET_VALUES[key] : undefined;
}

/** Writes the container's mounts under `scratch` and builds its environment. */
function materialise(pod: Pod, container: Container, catalog: SecretCatalog, scratch: string) {
  const problems: string[] = [];
  const where = `${pod.name} container ${container.name}`;
  const mounts: { mountPath: string; local: string }[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.spec.volumes?.find((candidate) => candidate.name === mount.name);
    const local = path.join(scratch, container.name, mount.name);
    mkdirSync(local, { recursive: true });
    mounts.push({ mountPath: mount.mountPath, local });
    if (!volume) {
      problems.push(`${where}: mounts ${mount.name}, which is no volume of the pod`);
      continue;
    }
    if (!volume.secret) continue;
    const held = catalog.get(volume.secret.secretName);
    if (!held) {
      problems.push(`${where}: Secret ${volume.secret.secretName} is neither documented nor issued`);
      continue;
    }
    const files = volume.secret.items ?? [...held].map((key) => ({ key, path: key }));
    for (const { key, path: file } of files) {
      const value = secretValue(key);
      if (!held.has(key)) problems.push(`${where}: Secret ${volume.secret.secretName} has no key ${key}`);
      else if (value === undefined) problems.push(`${where}: no test value for Secret key ${key}`);
      else writeFileSync(path.join(local, file), value);
    }
  }

  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (Object.hasOwn(env, variable.name)) problems.push(`${where}: sets ${variable.name} twice`);
    const ref = variable.valueFrom?.secretKeyRef;
    let value: string | undefined;
    if (variable.value !== undefined) {
      value = variable.value;
    } else if (ref) {
      if (!catalog.get(ref.name)?.has(ref.key)) {
        problems.push(`${where}: ${variable.name} reads ${ref.name}/${ref.key}, which is not documented`);
      }
      value = secretValue(ref.key);
      if (value === undefined) problems.push(`${where}: no test value for Secret key ${ref.key}`);
    } else {
      problems.push(`${where}: ${variable.name} takes its value from a source the check does not know`);
    }
    if (value === undefined) continue;
    if (variable.name.endsWith("_FILE")) {
      const file = value;
      const mount = mounts.find(({ mountPath }) => file.startsWith(`${mountPath}/`));
      if (!mount) {
        problems.push(`${where}: ${variable.name}=${file} is in no volume the container mounts`);
      } else {
        value = path.join(mount.local, file.slice(mount.mountPath.length + 1));
        if (!existsSync(value)) problems.push(`${where}: ${variable.name}=${file}: its volume holds no such file`);
      }
    }
    env[variable.name] = value;
  }
  return { env, problems };
}

/** packages/db/src/cli.ts: DATABASE_URL, or a local default that never suits a cluster. */
function loadMigrateConfig(env: Record<string, string>): { databaseUrl: string } {
  const databaseUrl = env.DATABASE_URL?.trim();
  if (!databaseUrl) throw new Error("DATABASE_URL is not set (the migrator would use its local default)");
  return { databaseUrl };
}

export function start(pod: Pod, container: Container, catalog: SecretCatalog, scratch: string): Started {
  const { env, problems } = materialise(pod, container, catalog, scratch);
  const app = appOf(container);
  let loaded: AppConfig | undefined;
  try {
    if (app === "gateway") loaded = { app, config: loadGatewayConfig(env) };
    else if (app === "control-plane") loaded = { app, config: loadControlPlaneConfig(env) };
    else if (app === "agent") loaded = { app, config: loadAgentConfig(env) };
    else if (app === "migrate") loaded = { app, config: loadMigrateConfig(env) };
    else
      problems.push(
        `${pod.name} container ${container.name}: runs ${JSON.stringify(container.args)}, no app of the image's`,
      );
  } catch (error) {
    problems.push(
      `${pod.name} container ${container.name}: ${app} refuses its configuration: ${(error as Error).message}`,
    );
  }
  return { env, loaded, problems };
}

/** The Dockerfile's ENTRYPOINT, USER and EXPOSE, which the manifests must agree with. */
export function dockerfileFacts(dockerfile: string): { entrypoint: string[]; uid: number; exposed: Set<number> } {
  const instruction = (name: string) =>
    [...dockerfile.matchAll(new RegExp(`^${name}\\s+(.+)$`, "gm"))].map((match) => match[1] ?? "");
  const entrypoint = JSON.parse(instruction("ENTRYPOINT").at(-1) ?? "[]") as string[];
  const uid = Number((instruction("USER").at(-1) ?? "").split(":")[0]);
  const exposed = new Set(
    instruction("EXPOSE").flatMap((ports) => ports.split(/\s+/).map((port) => Number.parseInt(port, 10))),
  );
  return { entrypoint, uid, exposed };
}

export const readText = (file: string) => readFileSync(file, "utf8");
