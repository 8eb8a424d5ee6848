import { envBoolean, envPort, logLevel, parseEnv } from "@modelgate/core";
import { z } from "zod";

const DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/modelgate";

const environment = z
  .object({
    MODELGATE_CONTROL_PLANE_HOST: z.string().default("127.0.0.1"),
    MODELGATE_CONTROL_PLANE_PORT: envPort.default(8081),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgresql:// URL" }).optional(),
    // Exactly what a Bearer header can carry: a token with a space, a
    // newline from a secret file or non-ASCII text could never log in.
    MODELGATE_ADMIN_TOKEN: z
      .string()
      .min(32, "must be at least 32 characters")
      .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
      .optional(),
    MODELGATE_DEV: envBoolean.default(false),
    MODELGATE_MIGRATE_ON_START: envBoolean.default(true),
    MODELGATE_DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
    LOG_LEVEL: logLevel.default("info"),
  })
  .superRefine((env, ctx) => {
    // Outside dev mode nothing is guessed: a production control plane must be
    // told where its database is and what its admin credential is.
    if (env.MODELGATE_DEV) return;
    if (!env.DATABASE_URL) {
      ctx.addIssue({ code: "custom", path: ["DATABASE_URL"], message: "is required unless MODELGATE_DEV=true" });
    }
    if (!env.MODELGATE_ADMIN_TOKEN) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_ADMIN_TOKEN"],
        message: "is required unless MODELGATE_DEV=true (then one is generated and printed)",
      });
    }
  });

export interface ControlPlaneConfig {
  host: string;
  port: number;
  databaseUrl: string;
  /** Undefined only in dev mode, where main.ts generates one. */
  adminToken: string | undefined;
  dev: boolean;
  migrateOnStart: boolean;
  dbPoolSize: number;
  logLevel: z.output<typeof logLevel>;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): ControlPlaneConfig {
  const parsed = parseEnv(environment, env);
  return {
    host: parsed.MODELGATE_CONTROL_PLANE_HOST,
    port: parsed.MODELGATE_CONTROL_PLANE_PORT,
    databaseUrl: parsed.DATABASE_URL ?? DEV_DATABASE_URL,
    adminToken: parsed.MODELGATE_ADMIN_TOKEN,
    dev: parsed.MODELGATE_DEV,
    migrateOnStart: parsed.MODELGATE_MIGRATE_ON_START,
    dbPoolSize: parsed.MODELGATE_DB_POOL_SIZE,
    logLevel: parsed.LOG_LEVEL,
  };
}

/** The configuration as it may be logged: no admin token, no database password. */
export function redactConfig(config: ControlPlaneConfig): Record<string, unknown> {
  const databaseUrl = new URL(config.databaseUrl);
  if (databaseUrl.password) databaseUrl.password = "redacted";
  for (const parameter of ["password", "sslpassword"]) {
    if (databaseUrl.searchParams.has(parameter)) databaseUrl.searchParams.set(parameter, "redacted");
  }
  const { adminToken, ...rest } = config;
  return { ...rest, databaseUrl: databaseUrl.toString(), adminToken: adminToken ? "[set]" : "[unset]" };
}
