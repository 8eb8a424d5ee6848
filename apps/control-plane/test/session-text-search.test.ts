// The listing's `q` is resolved one of three ways (service.ts): by walking
// the newest sessions and checking their bodies; past a budget, from the ids
// the trigram indexes give for a rare text; else by one query with the text
// condition. All must give the same pages; options force each way on this
// small data set.
import type { AuditRecord } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import { sessionListQuery } from "../src/features/sessions/schemas.js";
import { createSessionService } from "../src/features/sessions/service.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { type RunningControlPlane, startControlPlane } from "./harness.js";

const WORDS = ["invoice", "refund", "Kubernetes", "agenda", "50%_off", "café"];

function record(index: number): AuditRecord {
  // Several sessions share each second, so pages end inside a tie and the id breaks it.
  const receivedAt = new Date(Date.parse("2026-04-01T00:00:00.000Z") + Math.floor(index / 3) * 1000).toISOString();
  const word = (offset: number) => WORDS[(index + offset) % WORDS.length] as string;
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt,
    finishedAt: receivedAt,
    subject: { id: `user-${index % 4}`, groups: [`team-${index % 3}`], authMethod: "api_key" },
    connection: index % 2 ? "llama" : "mistral",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: index % 5 ? "allowed" : "blocked",
    policyIds: [],
    capped: [],
    latencyMs: 10,
    request: index % 7 === 0 ? undefined : { text: `about the ${word(0)}`, truncated: false, bytes: 20 },
    response:
      index % 3 === 0 ? undefined : { text: `An answer on ${word(2).toUpperCase()}`, truncated: false, bytes: 20 },
    events: [],
  };
}

describe("text search in the session listing", () => {
  let cp: RunningControlPlane;
  const records = Array.from({ length: 60 }, (_, index) => record(index));

  beforeAll(async () => {
    cp = await startControlPlane();
    const store = createSessionStore({ db: cp.db });
    for (const item of records) await store.write(item);
  });
  afterAll(async () => {
    await cp.close();
  });

  /** Every page of a listing, followed by cursor. */
  async function allPages(service: ReturnType<typeof createSessionService>, query: Record<string, string>) {
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const parsed = sessionListQuery.parse({ ...query, ...(cursor ? { cursor } : {}) });
      const page = await service.list(parsed);
      pages.push(page.items.map((item) => item.id));
      cursor = page.nextCursor;
    } while (cursor && pages.length < 100);
    return pages;
  }

  const expected = (q: string, keep: (item: AuditRecord) => boolean = () => true) =>
    records
      .filter(
        (item) =>
          keep(item) &&
          [item.request?.text, item.response?.text].some((text) => text?.toLowerCase().includes(q.toLowerCase())),
      )
      .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt) || (b.sessionId < a.sessionId ? -1 : 1))
      .map((item) => item.sessionId);

  it.each([
    ["a word, any case", { q: "INVOICE" }, () => true],
    ["a word written otherwise in the answers", { q: "kubernetes" }, () => true],
    ["wildcards taken literally", { q: "50%_off" }, () => true],
    ["text that is nowhere", { q: "nowhere-at-all" }, () => true],
    ["with a user", { q: "refund", user: "user-1" }, (item: AuditRecord) => item.subject?.id === "user-1"],
    [
      "with a group and a decision",
      { q: "agenda", group: "team-0", decision: "allowed" },
      (item: AuditRecord) => item.subject?.groups.includes("team-0") === true && item.decision === "allowed",
    ],
  ])("%s: the index way and the walking way page alike", async (_label, query, keep) => {
    const want = expected(query.q, keep);
    const byIndex = createSessionService({ db: cp.db, textWalkBudget: 0 });
    // Neither walking nor the rare-text ids: the single query Postgres plans.
    const bySingleQuery = createSessionService({ db: cp.db, textWalkBudget: 0, rareTextLimit: 0 });
    const byWalking = createSessionService({ db: cp.db, textWalkBudget: 1_000_000 });
    const byDefault = createSessionService({ db: cp.db });
    // Spend their budget part-way through the sessions, then ask the indexes.
    const byBoth = createSessionService({ db: cp.db, textWalkBudget: 3 });
    const byBothThenQuery = createSessionService({ db: cp.db, textWalkBudget: 1, rareTextLimit: 0 });
    for (const limit of ["2", "5", "500"]) {
      const indexPages = await allPages(byIndex, { ...query, limit });
      const walkingPages = await allPages(byWalking, { ...query, limit });
      expect(walkingPages).toEqual(indexPages);
      expect(await allPages(bySingleQuery, { ...query, limit })).toEqual(indexPages);
      expect(await allPages(byDefault, { ...query, limit })).toEqual(indexPages);
      expect(await allPages(byBoth, { ...query, limit })).toEqual(indexPages);
      expect(await allPages(byBothThenQuery, { ...query, limit })).toEqual(indexPages);
      expect(indexPages.flat()).toEqual(want);
      expect(indexPages.slice(0, -1).every((page) => page.length === Number(limit))).toBe(true);
    }
    if (query.q !== "nowhere-at-all") expect(want.length).toBeGreaterThan(1);
  });
});
