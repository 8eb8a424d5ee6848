// Quota threshold alerts: raised once per crossing however often gateways
// report it, handed to the exporters each time (their queue keeps one
// delivery per event), and nothing out of bounds is taken from a gateway.
import { uuidv7 } from "@modelgate/core";
import { createDatabaseClient, type Database } from "@modelgate/db";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { createQuotaAlerts, quotaAlertId, quotaThresholdInput } from "../src/features/alerts/quota-alerts.js";
import type { AlertEventBody } from "../src/features/exporters/events.js";

describe("quota threshold alerts", () => {
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabaseClient({ databaseUrl: database.url, maxConnections: 2 });
  });
  afterAll(async () => {
    await db?.$disconnect();
    await database?.drop();
  });

  const crossing = (overrides: Record<string, unknown> = {}) =>
    quotaThresholdInput.parse({
      policyId: uuidv7(),
      scope: "subject",
      owner: "alice",
      kind: "tokens",
      per: "day",
      window: "d2026-12-07",
      used: 1_600_000,
      limit: 2_000_000,
      threshold: 80,
      ...overrides,
    });

  it("raises one alert per crossing, however often it is reported, and sends it to the exporters each time", async () => {
    const sent: AlertEventBody[] = [];
    const alerts = createQuotaAlerts({ db, send: async (alert) => void sent.push(alert) });
    const report = crossing();
    expect(await alerts.raise(report)).toBe(true);
    expect(await alerts.raise(report)).toBe(false);
    const rows = await db.alert.findMany({ where: { kind: "quota_threshold" } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: quotaAlertId(report),
      ruleId: null,
      subject: "alice",
      sessionIds: [],
      details: { ...report, policyName: null },
    });
    expect(sent.map((alert) => alert.id)).toEqual([rows[0]?.id, rows[0]?.id]);

    // The next threshold, another owner or another window is another alert.
    expect(await alerts.raise({ ...report, threshold: 100, used: 2_000_000 })).toBe(true);
    expect(await alerts.raise({ ...report, owner: "bob" })).toBe(true);
    expect(await alerts.raise({ ...report, window: "d2026-12-08" })).toBe(true);
    expect(await db.alert.count({ where: { kind: "quota_threshold" } })).toBe(4);
  });

  it("names a group's budget by the group, with no subject", async () => {
    const alerts = createQuotaAlerts({ db });
    const report = crossing({ scope: "group", owner: "research" });
    await alerts.raise(report);
    expect(await db.alert.findUnique({ where: { id: quotaAlertId(report) } })).toMatchObject({ subject: null });
  });

  it.each([
    ["a threshold other than 80 or 100", { threshold: 90 }],
    ["an unknown scope", { scope: "tenant" }],
    ["a window in another form", { window: "2026-12-07" }],
    ["a policy id that is not a UUID", { policyId: "p1" }],
    ["an empty owner", { owner: "" }],
    ["a limit of zero", { limit: 0 }],
    ["an unknown field", { extra: 1 }],
  ])("refuses a report with %s", (_what, overrides) => {
    expect(() => crossing(overrides)).toThrow();
  });
});
