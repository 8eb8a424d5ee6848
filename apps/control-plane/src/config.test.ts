import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, redactConfig } from "./config.js";

const TOKEN = "t".repeat(32);
const GATEWAY_TOKEN = "g".repeat(32);
const REQUIRED = { MODELGATE_ADMIN_TOKEN: TOKEN, MODELGATE_GATEWAY_TOKEN: GATEWAY_TOKEN };

describe("control-plane config", () => {
  it("requires a database URL, a gateway token and an admin token outside dev mode", () => {
    expect(() => loadConfig({})).toThrow(
      /DATABASE_URL: is required[\s\S]*MODELGATE_GATEWAY_TOKEN: is required[\s\S]*MODELGATE_ADMIN_TOKEN: is required/,
    );
    expect(() => loadConfig({ DATABASE_URL: "postgresql://db/modelgate", MODELGATE_ADMIN_TOKEN: "" })).toThrow(
      /MODELGATE_ADMIN_TOKEN/,
    );
  });

  it("names the CLI's sign-in only with an identity provider, and checks its client id and scope", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(loadConfig(base).cliLogin).toBeUndefined();
    expect(() => loadConfig({ ...base, MODELGATE_CLI_CLIENT_ID: "modelgate-cli" })).toThrow(
      /MODELGATE_CLI_CLIENT_ID needs OIDC_ISSUER/,
    );
    const oidc = {
      ...base,
      OIDC_ISSUER: "https://idp.example.com/,https://other.example.com/",
      OIDC_AUDIENCE: "modelgate",
    };
    expect(loadConfig({ ...oidc, MODELGATE_CLI_CLIENT_ID: "modelgate-cli" }).cliLogin).toEqual({
      issuer: "https://idp.example.com/",
      clientId: "modelgate-cli",
      scope: "openid",
    });
    expect(
      loadConfig({ ...oidc, MODELGATE_CLI_CLIENT_ID: "cli", MODELGATE_CLI_SCOPE: "openid api://modelgate/.default" })
        .cliLogin?.scope,
    ).toBe("openid api://modelgate/.default");
    expect(() => loadConfig({ ...oidc, MODELGATE_CLI_CLIENT_ID: "has space" })).toThrow(/MODELGATE_CLI_CLIENT_ID/);
    expect(() => loadConfig({ ...oidc, MODELGATE_CLI_CLIENT_ID: "cli", MODELGATE_CLI_SCOPE: 'openid "x"' })).toThrow(
      /MODELGATE_CLI_SCOPE/,
    );
  });

  it("refuses short admin tokens and non-Postgres URLs", () => {
    expect(() =>
      loadConfig({ ...REQUIRED, DATABASE_URL: "postgresql://db/x", MODELGATE_ADMIN_TOKEN: "short" }),
    ).toThrow(/MODELGATE_ADMIN_TOKEN: must be at least 32 characters/);
    expect(() => loadConfig({ ...REQUIRED, DATABASE_URL: "mysql://db/x" })).toThrow(/DATABASE_URL/);
    for (const unusable of [`${TOKEN} x`, `${TOKEN}\n`, `${TOKEN}é`]) {
      expect(() =>
        loadConfig({ ...REQUIRED, DATABASE_URL: "postgresql://db/x", MODELGATE_ADMIN_TOKEN: unusable }),
      ).toThrow(/MODELGATE_ADMIN_TOKEN: must be printable ASCII without spaces/);
    }
  });

  it("reads the admin and gateway tokens from files (mounted secrets), held to the variables' rules", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mg-cp-secrets-"));
    try {
      const file = (name: string, content: string) => {
        writeFileSync(path.join(dir, name), content);
        return path.join(dir, name);
      };
      const DATABASE_URL = "postgresql://db/x";
      // A secret file's one trailing newline is not part of the token.
      const config = loadConfig({
        DATABASE_URL,
        MODELGATE_ADMIN_TOKEN_FILE: file("admin", `${TOKEN}\n`),
        MODELGATE_GATEWAY_TOKEN_FILE: file("gateway", GATEWAY_TOKEN),
      });
      expect(config).toMatchObject({ adminToken: TOKEN, gatewayToken: GATEWAY_TOKEN });

      const secret = `${"s".repeat(40)} and more`;
      for (const [content, rule] of [
        ["short", /MODELGATE_ADMIN_TOKEN_FILE: the token in .* must be at least 32 characters/],
        [secret, /MODELGATE_ADMIN_TOKEN_FILE: the token in .* must be printable ASCII without spaces/],
        ["", /MODELGATE_ADMIN_TOKEN_FILE: the token in .* must be at least 32 characters/],
      ] as const) {
        const run = () =>
          loadConfig({
            ...REQUIRED,
            DATABASE_URL,
            MODELGATE_ADMIN_TOKEN: "",
            MODELGATE_ADMIN_TOKEN_FILE: file("bad", content),
          });
        expect(run).toThrow(rule);
        // The content never shows in the message.
        if (content !== "") expect(run).not.toThrow(content);
      }
      expect(() =>
        loadConfig({ ...REQUIRED, DATABASE_URL, MODELGATE_GATEWAY_TOKEN_FILE: file("gateway2", GATEWAY_TOKEN) }),
      ).toThrow("set MODELGATE_GATEWAY_TOKEN or MODELGATE_GATEWAY_TOKEN_FILE, not both");
      expect(() =>
        loadConfig({
          ...REQUIRED,
          DATABASE_URL,
          MODELGATE_ADMIN_TOKEN: "",
          MODELGATE_ADMIN_TOKEN_FILE: path.join(dir, "missing"),
        }),
      ).toThrow(/MODELGATE_ADMIN_TOKEN_FILE: cannot read .*missing \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lets dev mode run without either", () => {
    const config = loadConfig({ MODELGATE_DEV: "true" });
    expect(config).toMatchObject({
      dev: true,
      adminToken: undefined,
      port: 8081,
      host: "127.0.0.1",
      ops: { host: "127.0.0.1", port: 9081 },
      migrateOnStart: true,
    });
    expect(config.databaseUrl).toMatch(/^postgresql:\/\//);
  });

  it("reads every setting", () => {
    const config = loadConfig({
      DATABASE_URL: "postgresql://user:pw@db:5432/modelgate",
      ...REQUIRED,
      MODELGATE_CONTROL_PLANE_HOST: "0.0.0.0",
      MODELGATE_CONTROL_PLANE_GRPC_PORT: "9002",
      MODELGATE_CONTROL_PLANE_PORT: "9001",
      MODELGATE_CONTROL_PLANE_OPS_HOST: "10.0.0.5",
      MODELGATE_CONTROL_PLANE_OPS_PORT: "9003",
      MODELGATE_MIGRATE_ON_START: "false",
      MODELGATE_DB_POOL_SIZE: "3",
      MODELGATE_AUDIT_QUEUE_PREFIX: "modelgate-eu",
      LOG_LEVEL: "warn",
    });
    expect(config).toEqual({
      host: "0.0.0.0",
      port: 9001,
      ops: { host: "10.0.0.5", port: 9003 },
      databaseUrl: "postgresql://user:pw@db:5432/modelgate",
      adminToken: TOKEN,
      gatewayToken: GATEWAY_TOKEN,
      grpc: { host: "127.0.0.1", port: 9002, tls: undefined },
      dev: false,
      migrateOnStart: false,
      dbPoolSize: 3,
      auditQueuePrefix: "modelgate-eu",
      exportAllowCidrs: [],
      retention: { contentDays: undefined, metadataDays: undefined },
      approvals: { urlBase: undefined, maxPendingPerSubject: 20 },
      console: { oidc: undefined, publicUrl: undefined, sessionHours: 8, dir: undefined },
      logLevel: "warn",
    });
  });

  it("reads where approvers decide and the cap on pending approvals, refusing what cannot be right", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(
      loadConfig({
        ...base,
        MODELGATE_APPROVAL_URL_BASE: "https://modelgate.example.com/console/approvals/",
        MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT: "5",
      }).approvals,
    ).toEqual({ urlBase: "https://modelgate.example.com/console/approvals", maxPendingPerSubject: 5 });
    for (const [name, bad] of [
      ["MODELGATE_APPROVAL_URL_BASE", "ftp://modelgate.example.com/approvals"],
      ["MODELGATE_APPROVAL_URL_BASE", "https://user:pw@modelgate.example.com/approvals"],
      ["MODELGATE_APPROVAL_URL_BASE", "https://modelgate.example.com/approvals?x=1"],
      ["MODELGATE_APPROVAL_URL_BASE", "/console/approvals"],
      ["MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT", "0"],
      ["MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT", "1001"],
      ["MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT", "ten"],
    ] as const) {
      expect(() => loadConfig({ ...base, [name]: bad })).toThrow(new RegExp(`${name}: `));
    }
  });

  it("keeps the ops listener off the public port", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(() => loadConfig({ ...base, MODELGATE_CONTROL_PLANE_OPS_PORT: "8081" })).toThrow(
      /MODELGATE_CONTROL_PLANE_OPS_PORT: must differ/,
    );
    expect(
      loadConfig({ ...base, MODELGATE_CONTROL_PLANE_PORT: "0", MODELGATE_CONTROL_PLANE_OPS_PORT: "0" }).ops,
    ).toEqual({ host: "127.0.0.1", port: 0 });
  });

  it("lets exporters reach no special range unless MODELGATE_EXPORT_ALLOW_CIDRS names it, refusing bad ranges at start", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(loadConfig(base).exportAllowCidrs).toEqual([]);
    expect(loadConfig({ ...base, MODELGATE_EXPORT_ALLOW_CIDRS: " " }).exportAllowCidrs).toEqual([]);
    expect(
      loadConfig({ ...base, MODELGATE_EXPORT_ALLOW_CIDRS: "10.20.0.0/16, fd00:1::/32,,127.0.0.1/32" }).exportAllowCidrs,
    ).toEqual(["10.20.0.0/16", "fd00:1::/32", "127.0.0.1/32"]);
    for (const [bad, message] of [
      ["10.20.0.5/16", "10.20.0.5/16 has bits set past its prefix; did you mean 10.20.0.0/16?"],
      ["10.0.0.0/16,siem.internal", "siem.internal is not a CIDR range"],
      ["10.0.0.0", "10.0.0.0 is not a CIDR range"],
      ["10.0.0.0/40", "10.0.0.0/40: the prefix length is at most 32"],
    ]) {
      expect(() => loadConfig({ ...base, MODELGATE_EXPORT_ALLOW_CIDRS: bad })).toThrow(
        `MODELGATE_EXPORT_ALLOW_CIDRS: ${message}`,
      );
    }
  });

  it("configures the console's sign-in only with an identity provider and a public URL", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    const oidc = { ...base, OIDC_ISSUER: "https://idp.example.com/", OIDC_AUDIENCE: "modelgate" };
    expect(() => loadConfig({ ...base, MODELGATE_CONSOLE_CLIENT_ID: "console" })).toThrow(
      /MODELGATE_CONSOLE_CLIENT_ID needs OIDC_ISSUER/,
    );
    expect(() => loadConfig({ ...oidc, MODELGATE_CONSOLE_CLIENT_ID: "console" })).toThrow(
      /MODELGATE_PUBLIC_URL is required with MODELGATE_CONSOLE_CLIENT_ID/,
    );
    expect(() => loadConfig({ ...oidc, MODELGATE_CONSOLE_CLIENT_SECRET: "s".repeat(40) })).toThrow(
      /MODELGATE_CONSOLE_CLIENT_SECRET needs MODELGATE_CONSOLE_CLIENT_ID/,
    );
    const withClient = {
      ...oidc,
      MODELGATE_CONSOLE_CLIENT_ID: "modelgate-console",
      MODELGATE_PUBLIC_URL: "https://modelgate.example.com/",
    };
    expect(loadConfig(withClient).console).toEqual({
      oidc: {
        issuer: "https://idp.example.com/",
        clientId: "modelgate-console",
        clientSecret: undefined,
        scope: "openid",
        redirectUri: "https://modelgate.example.com/console/auth/callback",
        allowInsecureRequests: false,
      },
      publicUrl: "https://modelgate.example.com",
      sessionHours: 8,
      dir: undefined,
    });
    expect(
      loadConfig({ ...withClient, MODELGATE_CONSOLE_SCOPE: "openid api://modelgate/.default" }).console.oidc?.scope,
    ).toBe("openid api://modelgate/.default");
    expect(() => loadConfig({ ...withClient, MODELGATE_CONSOLE_CLIENT_ID: "has space" })).toThrow(
      /MODELGATE_CONSOLE_CLIENT_ID/,
    );
    // A public URL without a client is fine (admin-token sign-in, the Origin check behind a proxy).
    expect(loadConfig({ ...base, MODELGATE_PUBLIC_URL: "https://cp.example.com" }).console.publicUrl).toBe(
      "https://cp.example.com",
    );
  });

  it("sends approvers to the console's inbox when the public URL is known, unless told otherwise", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(loadConfig(base).approvals.urlBase).toBeUndefined();
    expect(loadConfig({ ...base, MODELGATE_PUBLIC_URL: "https://cp.example.com" }).approvals.urlBase).toBe(
      "https://cp.example.com/console/approvals",
    );
    const explicit = { ...base, MODELGATE_PUBLIC_URL: "https://cp.example.com" };
    expect(
      loadConfig({ ...explicit, MODELGATE_APPROVAL_URL_BASE: "https://approvals.example.com/a" }).approvals.urlBase,
    ).toBe("https://approvals.example.com/a");
  });

  it("wants the public URL as an https origin, or http on loopback", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    const publicUrl = (value: string) => loadConfig({ ...base, MODELGATE_PUBLIC_URL: value }).console.publicUrl;
    expect(publicUrl("http://127.0.0.1:8081")).toBe("http://127.0.0.1:8081");
    expect(publicUrl("http://localhost:8081/")).toBe("http://localhost:8081");
    expect(publicUrl("http://[::1]:8081")).toBe("http://[::1]:8081");
    expect(() => publicUrl("http://modelgate.example.com")).toThrow(/MODELGATE_PUBLIC_URL: must be https:\/\/ unless/);
    expect(() => publicUrl("https://modelgate.example.com/modelgate")).toThrow(
      /MODELGATE_PUBLIC_URL: .*without a path/,
    );
    expect(() => publicUrl("https://user:pw@modelgate.example.com")).toThrow(/MODELGATE_PUBLIC_URL: must have no user/);
    expect(() => publicUrl("https://modelgate.example.com/?a=b")).toThrow(/MODELGATE_PUBLIC_URL/);
    expect(() => publicUrl("ftp://modelgate.example.com")).toThrow(/MODELGATE_PUBLIC_URL/);
  });

  it("reads the console's session hours from 1 to 24, and its directory", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "1" }).console.sessionHours).toBe(1);
    expect(loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "24" }).console.sessionHours).toBe(24);
    expect(loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "" }).console.sessionHours).toBe(8);
    expect(() => loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "0" })).toThrow(
      /MODELGATE_CONSOLE_SESSION_HOURS: must be at least 1 hour/,
    );
    expect(() => loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "25" })).toThrow(
      /MODELGATE_CONSOLE_SESSION_HOURS: must be at most 24 hours/,
    );
    expect(() => loadConfig({ ...base, MODELGATE_CONSOLE_SESSION_HOURS: "1.5" })).toThrow(
      /MODELGATE_CONSOLE_SESSION_HOURS: must be a whole number of hours/,
    );
    expect(loadConfig({ ...base, MODELGATE_CONSOLE_DIR: "/srv/console" }).console.dir).toBe("/srv/console");
  });

  it("reads the console's client secret from a variable or a file, and never logs it", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mg-console-secret-"));
    try {
      const file = path.join(dir, "secret");
      writeFileSync(file, "file-secret-value-0123456789\n");
      const base = {
        ...REQUIRED,
        DATABASE_URL: "postgresql://db/x",
        OIDC_ISSUER: "https://idp.example.com/",
        OIDC_AUDIENCE: "modelgate",
        MODELGATE_CONSOLE_CLIENT_ID: "modelgate-console",
        MODELGATE_PUBLIC_URL: "https://modelgate.example.com",
      };
      const fromFile = loadConfig({ ...base, MODELGATE_CONSOLE_CLIENT_SECRET_FILE: file });
      expect(fromFile.console.oidc?.clientSecret).toBe("file-secret-value-0123456789");
      const fromVariable = loadConfig({ ...base, MODELGATE_CONSOLE_CLIENT_SECRET: "variable-secret-value-0123" });
      const logged = JSON.stringify(redactConfig(fromVariable));
      expect(logged).not.toContain("variable-secret-value-0123");
      expect(logged).toContain('"clientSecret":"[set]"');
      expect(() =>
        loadConfig({ ...base, MODELGATE_CONSOLE_CLIENT_SECRET: "x", MODELGATE_CONSOLE_CLIENT_SECRET_FILE: file }),
      ).toThrow(/set MODELGATE_CONSOLE_CLIENT_SECRET or MODELGATE_CONSOLE_CLIENT_SECRET_FILE, not both/);
      expect(() => loadConfig({ ...base, MODELGATE_CONSOLE_CLIENT_SECRET: "has space" })).toThrow(
        /MODELGATE_CONSOLE_CLIENT_SECRET: must be printable ASCII/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("redacts the admin token and the database password for logging", () => {
    const redacted = JSON.stringify(
      redactConfig(loadConfig({ DATABASE_URL: "postgresql://user:s3cret@db/modelgate", ...REQUIRED })),
    );
    expect(redacted).not.toContain(TOKEN);
    expect(redacted).not.toContain(GATEWAY_TOKEN);
    expect(redacted).not.toContain("s3cret");
    expect(redacted).toContain("[set]");
    const inQuery = JSON.stringify(
      redactConfig(
        loadConfig({
          DATABASE_URL: "postgresql://db/modelgate?password=qsecret&sslpassword=ksecret",
          ...REQUIRED,
        }),
      ),
    );
    expect(inQuery).not.toMatch(/qsecret|ksecret/);
  });

  it("runs the audit worker only with a Redis URL, whose password is never logged", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(loadConfig(base).redisUrl).toBeUndefined();
    expect(loadConfig({ ...base, MODELGATE_REDIS_URL: "" }).redisUrl).toBeUndefined();
    expect(() => loadConfig({ ...base, MODELGATE_REDIS_URL: "http://cache:6379" })).toThrow(
      /MODELGATE_REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/,
    );
    const config = loadConfig({ ...base, MODELGATE_REDIS_URL: "rediss://:r3dis-secret@cache:6380/0" });
    expect(config.redisUrl).toBe("rediss://:r3dis-secret@cache:6380/0");
    expect(JSON.stringify(redactConfig(config))).not.toContain("r3dis-secret");
  });

  it("reads audit retention in whole days, content never kept longer than metadata, and only with Redis", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x", MODELGATE_REDIS_URL: "redis://cache:6379" };
    expect(loadConfig(base).retention).toEqual({ contentDays: undefined, metadataDays: undefined });
    expect(
      loadConfig({ ...base, MODELGATE_RETENTION_CONTENT_DAYS: "", MODELGATE_RETENTION_METADATA_DAYS: " " }).retention,
    ).toEqual({ contentDays: undefined, metadataDays: undefined });
    expect(loadConfig({ ...base, MODELGATE_RETENTION_CONTENT_DAYS: "30" }).retention).toEqual({
      contentDays: 30,
      metadataDays: undefined,
    });
    expect(
      loadConfig({ ...base, MODELGATE_RETENTION_CONTENT_DAYS: "30", MODELGATE_RETENTION_METADATA_DAYS: "30" })
        .retention,
    ).toEqual({ contentDays: 30, metadataDays: 30 });
    for (const bad of ["0", "-1", "1.5", "30d", "99999"]) {
      expect(() => loadConfig({ ...base, MODELGATE_RETENTION_CONTENT_DAYS: bad })).toThrow(
        /MODELGATE_RETENTION_CONTENT_DAYS: must be/,
      );
    }
    expect(() =>
      loadConfig({ ...base, MODELGATE_RETENTION_CONTENT_DAYS: "90", MODELGATE_RETENTION_METADATA_DAYS: "30" }),
    ).toThrow(/MODELGATE_RETENTION_CONTENT_DAYS: must be set, and at most MODELGATE_RETENTION_METADATA_DAYS \(30\)/);
    expect(() => loadConfig({ ...base, MODELGATE_RETENTION_METADATA_DAYS: "30" })).toThrow(
      /MODELGATE_RETENTION_CONTENT_DAYS: must be set/,
    );
    const { MODELGATE_REDIS_URL: _redis, ...withoutRedis } = base;
    expect(() => loadConfig({ ...withoutRedis, MODELGATE_RETENTION_CONTENT_DAYS: "30" })).toThrow(
      /MODELGATE_REDIS_URL: is required for retention/,
    );
  });

  it("serves gRPC in plaintext only on loopback unless TLS is configured or insecure is allowed", () => {
    const base = { ...REQUIRED, DATABASE_URL: "postgresql://db/x" };
    expect(() => loadConfig({ ...base, MODELGATE_CONTROL_PLANE_GRPC_HOST: "0.0.0.0" })).toThrow(
      /MODELGATE_CONTROL_PLANE_GRPC_HOST: plaintext gRPC/,
    );
    expect(
      loadConfig({ ...base, MODELGATE_CONTROL_PLANE_GRPC_HOST: "0.0.0.0", MODELGATE_GRPC_ALLOW_INSECURE: "true" }).grpc,
    ).toMatchObject({ host: "0.0.0.0", tls: undefined });
    expect(
      loadConfig({
        ...base,
        MODELGATE_CONTROL_PLANE_GRPC_HOST: "0.0.0.0",
        MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE: "/tls/cert.pem",
        MODELGATE_CONTROL_PLANE_GRPC_TLS_KEY_FILE: "/tls/key.pem",
      }).grpc.tls,
    ).toEqual({ certFile: "/tls/cert.pem", keyFile: "/tls/key.pem" });
    expect(() => loadConfig({ ...base, MODELGATE_CONTROL_PLANE_GRPC_TLS_CERT_FILE: "/tls/cert.pem" })).toThrow(
      /go together/,
    );
    expect(() => loadConfig({ ...base, MODELGATE_GATEWAY_TOKEN: "short" })).toThrow(/MODELGATE_GATEWAY_TOKEN/);
  });
});
