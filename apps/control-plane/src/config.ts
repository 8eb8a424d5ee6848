import { ConfigError, envBoolean, envPort, logLevel, parseEnv, secretSetting } from "@modelgate/core";
import { type OidcVerifierOptions, oidcOptionsFromEnv } from "@modelgate/identity";
import { plaintextRefusal } from "@modelgate/protocol";
import { z } from "zod";
import { parseAllowedCidrs } from "./features/exporters/address-policy.js";
import { parseSecretsKey } from "./secret-box.js";

const DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/modelgate";

const groupList = z
  .string()
  .default("")
  .transform((value) =>
    value
      .split(",")
      .map((group) => group.trim())
      .filter(Boolean),
  );

const retentionDays = z
  .string()
  .regex(/^[0-9]+$/, "must be a whole number of days")
  .transform(Number)
  .pipe(z.number().int().min(1, "must be at least 1 day").max(36_500, "must be at most 36500 days (100 years)"));

/**
 * Where approvers decide: an http(s) URL without credentials, query or
 * fragment (approval URLs are `<base>/<id>`). A trailing slash is dropped.
 */
const approvalUrlBase = z
  .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
  .max(1024)
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && url.username === "" && url.password === "" && url.search === "" && url.hash === "";
  }, "must have no user name, password, query or fragment")
  .transform((value) => value.replace(/\/+$/, ""));

// Exactly what a Bearer header can carry: a token with a space, a newline
// from a secret file or non-ASCII text could never log in.
const bearerSecret = z
  .string()
  .min(32, "must be at least 32 characters")
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

const oauthScope = z
  .string()
  .regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, "must be OAuth scopes separated by single spaces")
  .max(1024)
  .default("openid");

const clientId = z.string().regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable ASCII characters without spaces");

/** 127.0.0.0/8, ::1 and localhost: a browser treats them as secure without TLS. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * The control plane's address as browsers reach it: an origin, since the
 * console lives at /console and its cookies at Path=/. https, because the
 * session cookie is Secure, except on loopback where browsers allow that
 * over http.
 */
const publicUrl = z
  .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
  .max(1024)
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && url.username === "" && url.password === "" && url.search === "" && url.hash === "";
  }, "must have no user name, password, query or fragment")
  .refine(
    (value) => URL.parse(value)?.pathname === "/",
    "must be an origin such as https://modelgate.example.com, without a path",
  )
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && (url.protocol === "https:" || isLoopbackHost(url.hostname));
  }, "must be https:// unless its host is loopback (127.0.0.1, [::1], localhost)")
  .transform((value) => new URL(value).origin);

const environment = z
  .object({
    MODELGATE_CONTROL_PLANE_HOST: z.string().default("127.0.0.1"),
    MODELGATE_CONTROL_PLANE_PORT: envPort.default(8081),
    // /livez, /readyz and /metrics: on the operator's network only (docs/operations.md).
    MODELGATE_CONTROL_PLANE_OPS_HOST: z.string().default("127.0.0.1"),
    MODELGATE_CONTROL_PLANE_OPS_PORT: envPort.default(9081),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgresql:// URL" }).optional(),
    // Either the token or a file holding it (mounted container secrets);
    // the file's content is checked like the variable, after parsing.
    MODELGATE_ADMIN_TOKEN: bearerSecret.optional(),
    MODELGATE_ADMIN_TOKEN_FILE: z.string().optional(),
    MODELGATE_CONTROL_PLANE_GRPC_HOST: z.string().default("127.0.0.1"),
    MODELGATE_CONTROL_PLANE_GRPC_PORT: envPort.default(8082),
    MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE: z.string().optional(),
    MODELGATE_CONTROL_PLANE_GRPC_TLS_KEY_FILE: z.string().optional(),
    MODELGATE_GRPC_ALLOW_INSECURE: envBoolean.default(false),
    // Shared with the gateways, which present it on the configuration stream.
    MODELGATE_GATEWAY_TOKEN: bearerSecret.optional(),
    MODELGATE_GATEWAY_TOKEN_FILE: z.string().optional(),
    // Comma-separated identity-provider groups whose members hold each role.
    MODELGATE_ADMIN_GROUPS: groupList,
    MODELGATE_AUDITOR_GROUPS: groupList,
    MODELGATE_APPROVER_GROUPS: groupList,
    // The CLI's sign-in (docs/cli.md): a public client at the identity
    // provider allowed the device authorization grant, and the scope to ask
    // for so that its access tokens are for this API.
    MODELGATE_CLI_CLIENT_ID: clientId.optional(),
    MODELGATE_CLI_SCOPE: oauthScope,
    // The web console's sign-in (docs/console-auth.md): a client at the
    // identity provider for the authorization code flow, confidential with a
    // secret or public (PKCE alone) without, and the address the provider
    // sends people back to.
    MODELGATE_CONSOLE_CLIENT_ID: clientId.optional(),
    MODELGATE_CONSOLE_CLIENT_SECRET: z.string().max(4096).optional(),
    MODELGATE_CONSOLE_CLIENT_SECRET_FILE: z.string().optional(),
    MODELGATE_CONSOLE_SCOPE: oauthScope,
    MODELGATE_PUBLIC_URL: publicUrl.optional(),
    MODELGATE_CONSOLE_SESSION_HOURS: z
      .string()
      .regex(/^[0-9]+$/, "must be a whole number of hours")
      .transform(Number)
      .pipe(z.number().int().min(1, "must be at least 1 hour").max(24, "must be at most 24 hours"))
      .default(8),
    // Where the console's build is, instead of the @modelgate/console package's dist/.
    MODELGATE_CONSOLE_DIR: z.string().optional(),
    MODELGATE_DEV: envBoolean.default(false),
    MODELGATE_MIGRATE_ON_START: envBoolean.default(true),
    MODELGATE_DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
    // The audit queue the gateways write to. Without it no audit worker runs
    // and no gateway record reaches Postgres.
    MODELGATE_REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }).optional(),
    MODELGATE_AUDIT_QUEUE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '_', '.' or '-'")
      .default("bull"),
    // Seals the secrets the control plane must use again (webhook signing
    // keys, docs/siem.md). Without it they are stored unsealed, with a warning.
    MODELGATE_SECRETS_KEY: z
      .string()
      .transform((value, ctx) => {
        const key = parseSecretsKey(value);
        if (!key) {
          ctx.addIssue({
            code: "custom",
            message: "must be 32 bytes as base64 (44 characters) or hex (64 characters)",
          });
          return z.NEVER;
        }
        return key;
      })
      .optional(),
    // Ranges SIEM exporters may reach although they are not public addresses
    // (docs/siem.md). Unset or empty: none; loopback, private, link-local and
    // the other special ranges are refused.
    MODELGATE_EXPORT_ALLOW_CIDRS: z
      .string()
      .default("")
      .transform((value, ctx) => {
        try {
          return parseAllowedCidrs(value).map((cidr) => cidr.text);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: (error as Error).message });
          return z.NEVER;
        }
      }),
    // Approvals (docs/approvals.md): where approvers decide (the console or
    // this API, behind its public address), and how many pending approvals
    // one caller may have open at once.
    MODELGATE_APPROVAL_URL_BASE: approvalUrlBase.optional(),
    MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT: z
      .string()
      .regex(/^[0-9]+$/, "must be a whole number")
      .transform(Number)
      .pipe(z.number().int().min(1, "must be at least 1").max(1000, "must be at most 1000"))
      .default(20),
    // Retention of audit sessions in days; unset keeps them forever. Content
    // (bodies and events) may go earlier than the session's metadata, never later.
    MODELGATE_RETENTION_CONTENT_DAYS: retentionDays.optional(),
    MODELGATE_RETENTION_METADATA_DAYS: retentionDays.optional(),
    LOG_LEVEL: logLevel.default("info"),
  })
  .superRefine((env, ctx) => {
    const contentDays = env.MODELGATE_RETENTION_CONTENT_DAYS;
    const metadataDays = env.MODELGATE_RETENTION_METADATA_DAYS;
    if (metadataDays !== undefined && (contentDays === undefined || contentDays > metadataDays)) {
      // Deleting a session deletes its content: a longer content retention could never hold.
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_RETENTION_CONTENT_DAYS"],
        message: `must be set, and at most MODELGATE_RETENTION_METADATA_DAYS (${metadataDays}), when that is set`,
      });
    }
    const opsPort = env.MODELGATE_CONTROL_PLANE_OPS_PORT;
    if (opsPort !== 0 && opsPort === env.MODELGATE_CONTROL_PLANE_PORT) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_CONTROL_PLANE_OPS_PORT"],
        message: "must differ from MODELGATE_CONTROL_PLANE_PORT (ops stay off the public port)",
      });
    }
    if ((contentDays !== undefined || metadataDays !== undefined) && !env.MODELGATE_REDIS_URL) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_REDIS_URL"],
        message: "is required for retention (the purge runs as a BullMQ job)",
      });
    }
    // Outside dev mode nothing is guessed: a production control plane must be
    // told where its database is and what its admin credential is.
    if (env.MODELGATE_DEV) return;
    if (!env.DATABASE_URL) {
      ctx.addIssue({ code: "custom", path: ["DATABASE_URL"], message: "is required unless MODELGATE_DEV=true" });
    }
    if (!env.MODELGATE_GATEWAY_TOKEN && !env.MODELGATE_GATEWAY_TOKEN_FILE) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_GATEWAY_TOKEN"],
        message:
          "is required (or MODELGATE_GATEWAY_TOKEN_FILE) unless MODELGATE_DEV=true (then one is generated and printed)",
      });
    }
    // With OIDC admins configured, the bootstrap token may be left out.
    if (!env.MODELGATE_ADMIN_TOKEN && !env.MODELGATE_ADMIN_TOKEN_FILE && env.MODELGATE_ADMIN_GROUPS.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["MODELGATE_ADMIN_TOKEN"],
        message:
          "is required (or MODELGATE_ADMIN_TOKEN_FILE) unless MODELGATE_ADMIN_GROUPS (with OIDC_ISSUER) is set or MODELGATE_DEV=true (then one is generated and printed)",
      });
    }
  });

/** What `modelgate login` needs to sign a person in at the identity provider; public. */
export interface CliLogin {
  issuer: string;
  clientId: string;
  scope: string;
}

/** The web console's client at the identity provider (authorization code flow with PKCE). */
export interface ConsoleOidcClient {
  issuer: string;
  clientId: string;
  /** Undefined: a public client, PKCE alone. Never logged. */
  clientSecret: string | undefined;
  scope: string;
  /** `${MODELGATE_PUBLIC_URL}/console/auth/callback`: to register at the identity provider. */
  redirectUri: string;
  /** OIDC_ALLOW_INSECURE_HTTP: an http:// issuer (development). */
  allowInsecureRequests: boolean;
}

export interface ConsoleSettings {
  /** Undefined without MODELGATE_CONSOLE_CLIENT_ID: no sign-in at the identity provider. */
  oidc: ConsoleOidcClient | undefined;
  /** MODELGATE_PUBLIC_URL as an origin. */
  publicUrl: string | undefined;
  sessionHours: number;
  /** MODELGATE_CONSOLE_DIR; undefined: the @modelgate/console package's dist/. */
  dir: string | undefined;
}

export interface ControlPlaneConfig {
  host: string;
  port: number;
  /** The ops listener (/livez, /readyz, /metrics). */
  ops: { host: string; port: number };
  databaseUrl: string;
  /** Undefined in dev mode, where main.ts generates one, or when OIDC admins exist. */
  adminToken: string | undefined;
  /** How the CLI signs people in (device authorization grant); undefined without MODELGATE_CLI_CLIENT_ID. */
  cliLogin: CliLogin | undefined;
  /** The web console: its sign-in at the identity provider, sessions and files. */
  console: ConsoleSettings;
  /** OIDC sign-in for the API; undefined when OIDC_ISSUER is not set. */
  oidc:
    | { verifier: OidcVerifierOptions; roleGroups: { admin: string[]; auditor: string[]; approver: string[] } }
    | undefined;
  grpc: {
    host: string;
    port: number;
    tls: { certFile: string; keyFile: string } | undefined;
  };
  /** Undefined only in dev mode, where one is generated. */
  gatewayToken: string | undefined;
  dev: boolean;
  migrateOnStart: boolean;
  dbPoolSize: number;
  /** Redis holding the audit queue; the audit worker runs only when it is set. */
  redisUrl: string | undefined;
  /** BullMQ key prefix of the audit queue, the same on gateways and control planes. */
  auditQueuePrefix: string;
  /** Seals webhook signing secrets at rest; undefined stores them unsealed. */
  secretsKey: Buffer | undefined;
  /** CIDR ranges exporters may reach though not global unicast; empty: none. */
  exportAllowCidrs: string[];
  /** Audit retention in days; both undefined: keep everything, and no purge job runs. */
  retention: { contentDays: number | undefined; metadataDays: number | undefined };
  /** Approval URLs' base (undefined: this API's own address) and the per-subject cap on pending approvals. */
  approvals: { urlBase: string | undefined; maxPendingPerSubject: number };
  logLevel: z.output<typeof logLevel>;
}

/** A token given as `NAME` or in the file `NAME_FILE` names, held to the variable's rules either way. */
function bearerSetting(name: string, value: string | undefined, file: string | undefined): string | undefined {
  const token = secretSetting(name, value, file);
  if (token === undefined || file === undefined) return token;
  const checked = bearerSecret.safeParse(token);
  // The message names the file's variable and the rule, never the content.
  if (!checked.success) throw new ConfigError(`${name}_FILE: the token in ${file} ${checked.error.issues[0]?.message}`);
  return checked.data;
}

function consoleSettingsOf(
  parsed: z.output<typeof environment>,
  oidc: OidcVerifierOptions | undefined,
): ConsoleSettings {
  const clientSecret = secretSetting(
    "MODELGATE_CONSOLE_CLIENT_SECRET",
    parsed.MODELGATE_CONSOLE_CLIENT_SECRET,
    parsed.MODELGATE_CONSOLE_CLIENT_SECRET_FILE,
  );
  const id = parsed.MODELGATE_CONSOLE_CLIENT_ID;
  const publicUrl = parsed.MODELGATE_PUBLIC_URL;
  const issuer = oidc?.issuers[0]?.issuer;
  if (!id && clientSecret !== undefined) {
    throw new ConfigError("MODELGATE_CONSOLE_CLIENT_SECRET needs MODELGATE_CONSOLE_CLIENT_ID");
  }
  if (id && (!oidc || !issuer)) {
    throw new ConfigError(
      "MODELGATE_CONSOLE_CLIENT_ID needs OIDC_ISSUER: the console signs in at that identity provider",
    );
  }
  if (id && !publicUrl) {
    throw new ConfigError(
      "MODELGATE_PUBLIC_URL is required with MODELGATE_CONSOLE_CLIENT_ID: the identity provider sends people back to <MODELGATE_PUBLIC_URL>/console/auth/callback",
    );
  }
  if (clientSecret !== undefined && !/^[\x21-\x7e]+$/.test(clientSecret)) {
    // Named, never echoed.
    throw new ConfigError("MODELGATE_CONSOLE_CLIENT_SECRET: must be printable ASCII without spaces");
  }
  return {
    oidc:
      id && oidc && issuer && publicUrl
        ? {
            issuer,
            clientId: id,
            clientSecret,
            scope: parsed.MODELGATE_CONSOLE_SCOPE,
            redirectUri: `${publicUrl}/console/auth/callback`,
            allowInsecureRequests: oidc.allowInsecureRequests ?? false,
          }
        : undefined,
    publicUrl,
    sessionHours: parsed.MODELGATE_CONSOLE_SESSION_HOURS,
    dir: parsed.MODELGATE_CONSOLE_DIR,
  };
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): ControlPlaneConfig {
  const parsed = parseEnv(environment, env);
  const adminToken = bearerSetting(
    "MODELGATE_ADMIN_TOKEN",
    parsed.MODELGATE_ADMIN_TOKEN,
    parsed.MODELGATE_ADMIN_TOKEN_FILE,
  );
  const gatewayToken = bearerSetting(
    "MODELGATE_GATEWAY_TOKEN",
    parsed.MODELGATE_GATEWAY_TOKEN,
    parsed.MODELGATE_GATEWAY_TOKEN_FILE,
  );
  const certFile = parsed.MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE;
  const keyFile = parsed.MODELGATE_CONTROL_PLANE_GRPC_TLS_KEY_FILE;
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new ConfigError(
      "MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE and MODELGATE_CONTROL_PLANE_GRPC_TLS_KEY_FILE go together",
    );
  }
  const refusal =
    certFile && keyFile
      ? undefined
      : plaintextRefusal(parsed.MODELGATE_CONTROL_PLANE_GRPC_HOST, parsed.MODELGATE_GRPC_ALLOW_INSECURE);
  if (refusal) {
    throw new ConfigError(
      `MODELGATE_CONTROL_PLANE_GRPC_HOST: ${refusal} (MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE/_KEY_FILE, or MODELGATE_GRPC_ALLOW_INSECURE=true)`,
    );
  }
  const oidc = oidcOptionsFromEnv(env);
  const roleGroups = {
    admin: parsed.MODELGATE_ADMIN_GROUPS,
    auditor: parsed.MODELGATE_AUDITOR_GROUPS,
    approver: parsed.MODELGATE_APPROVER_GROUPS,
  };
  if (!oidc && Object.values(roleGroups).some((groups) => groups.length > 0)) {
    throw new ConfigError("MODELGATE_ADMIN_GROUPS, _AUDITOR_GROUPS and _APPROVER_GROUPS need OIDC_ISSUER");
  }
  if (!oidc && parsed.MODELGATE_CLI_CLIENT_ID) {
    throw new ConfigError("MODELGATE_CLI_CLIENT_ID needs OIDC_ISSUER: the CLI signs in at that identity provider");
  }
  // With several issuers, people sign in at the first.
  const cliIssuer = oidc?.issuers[0]?.issuer;
  const consoleSettings = consoleSettingsOf(parsed, oidc);
  return {
    host: parsed.MODELGATE_CONTROL_PLANE_HOST,
    port: parsed.MODELGATE_CONTROL_PLANE_PORT,
    ops: { host: parsed.MODELGATE_CONTROL_PLANE_OPS_HOST, port: parsed.MODELGATE_CONTROL_PLANE_OPS_PORT },
    databaseUrl: parsed.DATABASE_URL ?? DEV_DATABASE_URL,
    adminToken,
    oidc: oidc ? { verifier: oidc, roleGroups } : undefined,
    cliLogin:
      parsed.MODELGATE_CLI_CLIENT_ID && cliIssuer
        ? { issuer: cliIssuer, clientId: parsed.MODELGATE_CLI_CLIENT_ID, scope: parsed.MODELGATE_CLI_SCOPE }
        : undefined,
    console: consoleSettings,
    grpc: {
      host: parsed.MODELGATE_CONTROL_PLANE_GRPC_HOST,
      port: parsed.MODELGATE_CONTROL_PLANE_GRPC_PORT,
      tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    },
    gatewayToken,
    dev: parsed.MODELGATE_DEV,
    migrateOnStart: parsed.MODELGATE_MIGRATE_ON_START,
    dbPoolSize: parsed.MODELGATE_DB_POOL_SIZE,
    redisUrl: parsed.MODELGATE_REDIS_URL,
    auditQueuePrefix: parsed.MODELGATE_AUDIT_QUEUE_PREFIX,
    secretsKey: parsed.MODELGATE_SECRETS_KEY,
    exportAllowCidrs: parsed.MODELGATE_EXPORT_ALLOW_CIDRS,
    retention: {
      contentDays: parsed.MODELGATE_RETENTION_CONTENT_DAYS,
      metadataDays: parsed.MODELGATE_RETENTION_METADATA_DAYS,
    },
    approvals: {
      // With a public address, approvers decide in the console's inbox.
      urlBase:
        parsed.MODELGATE_APPROVAL_URL_BASE ??
        (consoleSettings.publicUrl ? `${consoleSettings.publicUrl}/console/approvals` : undefined),
      maxPendingPerSubject: parsed.MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT,
    },
    logLevel: parsed.LOG_LEVEL,
  };
}

function redactUrl(value: string): string {
  const url = new URL(value);
  if (url.password) url.password = "redacted";
  for (const parameter of ["password", "sslpassword"]) {
    if (url.searchParams.has(parameter)) url.searchParams.set(parameter, "redacted");
  }
  return url.toString();
}

/** The configuration as it may be logged: no admin token, no database or Redis password. */
export function redactConfig(config: ControlPlaneConfig): Record<string, unknown> {
  const { adminToken, gatewayToken, secretsKey, ...rest } = config;
  const consoleClient = config.console.oidc;
  return {
    ...rest,
    console: {
      ...config.console,
      oidc: consoleClient && { ...consoleClient, clientSecret: consoleClient.clientSecret ? "[set]" : "[unset]" },
    },
    databaseUrl: redactUrl(config.databaseUrl),
    redisUrl: config.redisUrl ? redactUrl(config.redisUrl) : undefined,
    adminToken: adminToken ? "[set]" : "[unset]",
    gatewayToken: gatewayToken ? "[set]" : "[unset]",
    secretsKey: secretsKey ? "[set]" : "[unset]",
  };
}
