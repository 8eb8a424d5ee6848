// docker-compose.yml, read as Compose reads it: every app service runs an
// app of the image and sets only variables that app reads; secret files lie
// in volumes the service mounts; only loopback ports are published; Redis
// keeps an append-only file. (Running it needs Docker: see deploy/README.md.)
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { APPS } from "../image/apps.mjs";
import { type AppName, unknownVariables } from "./app-env.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  read_only?: boolean;
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = Object.entries(compose.services);
const ours = services.filter(([, service]) => service.build?.dockerfile === "deploy/Dockerfile");
const apps = ours.filter(([, service]) => service.entrypoint === undefined);

describe("docker-compose.yml", () => {
  it("runs the whole product from the one image: control plane, gateway, agent, demo runtime", () => {
    const byApp = new Map(apps.map(([name, service]) => [service.command?.[0], name]));
    for (const app of ["control-plane", "gateway", "agent", "runtime-fixture"]) expect(byApp.has(app)).toBe(true);
    for (const [name, service] of apps) {
      expect([name, service.command?.length]).toEqual([name, 1]);
      expect([name, Object.hasOwn(APPS, service.command?.[0] ?? "")]).toEqual([name, true]);
      // The image's user, and nothing written outside the volumes.
      expect([name, service.read_only]).toEqual([name, true]);
    }
    // Migrations are applied by the control plane at start.
    const controlPlane = apps.find(([, service]) => service.command?.[0] === "control-plane")?.[1];
    expect(controlPlane?.environment?.MODELGATE_MIGRATE_ON_START ?? "true").toBe("true");
  });

  it("sets only variables the app of each service reads", () => {
    for (const [name, service] of apps) {
      const app = service.command?.[0] as AppName;
      expect([name, unknownVariables(app, Object.keys(service.environment ?? {}))]).toEqual([name, []]);
    }
  });

  it("points every *_FILE setting into a volume the service mounts", () => {
    for (const [name, service] of ours) {
      const mounts = (service.volumes ?? []).map((volume) => volume.split(":")[1] ?? "");
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!key.endsWith("_FILE")) continue;
        expect([name, key, mounts.some((mount) => value.startsWith(`${mount}/`))]).toEqual([name, key, true]);
      }
    }
  });

  it("runs its one-shot helpers from deploy/compose/, mounted read-only", () => {
    const helpers = ours.filter(([, service]) => service.entrypoint !== undefined);
    expect(helpers.map(([name]) => name).sort()).toEqual(["provision", "secrets"]);
    for (const [name, service] of helpers) {
      const [node, script] = service.entrypoint ?? [];
      expect([name, node]).toEqual([name, "node"]);
      expect(service.volumes).toContain("./deploy/compose:/compose:ro");
      expect([name, existsSync(path.join(ROOT, "deploy/compose", path.basename(script ?? "")))]).toEqual([name, true]);
    }
    // The agent starts only with the token provision wrote.
    const agent = apps.find(([, service]) => service.command?.[0] === "agent")?.[1];
    expect(agent?.depends_on?.provision?.condition).toBe("service_completed_successfully");
  });

  it("publishes ports on loopback only, keeps Redis's append-only file and Postgres's data in volumes", () => {
    for (const [name, service] of services) {
      for (const port of service.ports ?? [])
        expect([name, port]).toEqual([name, expect.stringMatching(/^127\.0\.0\.1:/)]);
    }
    const redis = compose.services.redis;
    expect(redis?.command?.join(" ")).toMatch(/--appendonly yes/);
    expect(redis?.volumes?.some((volume) => volume.endsWith(":/data"))).toBe(true);
    expect(compose.services.postgres?.volumes?.some((volume) => volume.endsWith(":/var/lib/postgresql/data"))).toBe(
      true,
    );
    for (const [, service] of services) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0] ?? "";
        if (!source.startsWith(".")) expect(Object.keys(compose.volumes)).toContain(source);
      }
    }
  });
});
