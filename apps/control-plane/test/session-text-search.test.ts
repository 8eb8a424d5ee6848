// The listing's `q` is resolved one of three ways (service.ts): by walking
// the newest sessions and checking their bodies; past a budget, from the ids
// the trigram indexes give for a rare text; else by one query with the text
// condition. All must give the same pages; options force each way on this
// small data set. A streamed answer is searched by its text assembled from
// the events (answerSearchText), one stored before that by its body.
import type { AuditRecord } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import { sessionListQuery } from "../src/features/sessions/schemas.js";
import { createSessionService } from "../src/features/sessions/service.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { type RunningControlPlane, startControlPlane } from "./harness.js";

const WORDS = ["invoice", "refund", "Kubernetes", "agenda", "50%_off", "café"];

/** An OpenAI chat stream of `answer`, its last three characters in a chunk of their own. */
function sseOf(answer: string): string {
  const chunk = (content: string) =>
    `data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] })}\n\n`;
  return `${chunk(answer.slice(0, 6))}${chunk(answer.slice(6, -3))}${chunk(answer.slice(-3))}data: [DONE]\n\n`;
}

/** Ollama's NDJSON stream of `answer`, in two lines split inside the last word. */
function ndjsonOf(answer: string): string {
  const line = (content: string, done: boolean) =>
    `${JSON.stringify({ model: "llama3", message: { role: "assistant", content }, done })}\n`;
  return `${line(answer.slice(0, -2), false)}${line(answer.slice(-2), true)}`;
}

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
    ...answer(index, `An answer on ${word(2).toUpperCase()}`),
  };
}

/** Every third record has no answer; of the rest, some are streams (SSE or NDJSON), each word split across chunks. */
function answer(index: number, text: string): Pick<AuditRecord, "response" | "responseContentType" | "events"> {
  if (index % 3 === 0) return { events: [] };
  const kind = index % 4;
  if (kind === 1 || kind === 2) {
    const body = kind === 1 ? sseOf(text) : ndjsonOf(text);
    return {
      response: { text: body, truncated: false, bytes: Buffer.byteLength(body) },
      responseContentType: kind === 1 ? "text/event-stream; charset=utf-8" : "application/x-ndjson",
      events: [{ offsetMs: 5, data: body }],
    };
  }
  return {
    response: { text, truncated: false, bytes: Buffer.byteLength(text) },
    responseContentType: "text/plain",
    events: [],
  };
}

describe("text search in the session listing", () => {
  let cp: RunningControlPlane;
  const records = Array.from({ length: 60 }, (_, index) => record(index));
  /** A streamed answer stored before answer texts existed: its body is what is searched. */
  const legacy = records[1] as AuditRecord;
  /** What `q` matches each record's answer against. */
  const answerText = (item: AuditRecord): string | undefined => {
    if (item.responseContentType?.startsWith("text/event-stream") && item !== legacy)
      return `An answer on ${WORDS[(records.indexOf(item) + 2) % WORDS.length]?.toUpperCase()}`;
    if (item.responseContentType === "application/x-ndjson")
      return `An answer on ${WORDS[(records.indexOf(item) + 2) % WORDS.length]?.toUpperCase()}`;
    return item.response?.text;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    const store = createSessionStore({ db: cp.db });
    for (const item of records) await store.write(item);
    const { count } = await cp.db.sessionContent.updateMany({
      where: { sessionId: legacy.sessionId },
      data: { responseText: null },
    });
    expect(count).toBe(1);
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
          [item.request?.text, answerText(item)].some((text) => text?.toLowerCase().includes(q.toLowerCase())),
      )
      .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt) || (b.sessionId < a.sessionId ? -1 : 1))
      .map((item) => item.sessionId);

  it.each([
    ["a word, any case", { q: "INVOICE" }, () => true],
    ["a word written otherwise in the answers", { q: "kubernetes" }, () => true],
    ["wildcards taken literally", { q: "50%_off" }, () => true],
    ["text that is nowhere", { q: "nowhere-at-all" }, () => true],
    ["a stream's wrapper: only where the body is searched", { q: "chat.completion.chunk" }, () => true],
    ["a phrase across a stream's chunks", { q: "answer on AGENDA" }, () => true],
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
    if (query.q === "chat.completion.chunk") expect(want).toEqual([legacy.sessionId]);
    else if (query.q !== "nowhere-at-all") expect(want.length).toBeGreaterThan(1);
  });
});
