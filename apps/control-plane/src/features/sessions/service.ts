import type { Database, Prisma } from "@modelgate/db";
import { notFound } from "../../http/errors.js";
import type { Page } from "../../http/schemas.js";
import { responseContentType } from "./replay.js";
import {
  encodeCursor,
  type SessionListQuery,
  type SessionReplayView,
  type SessionStatsQuery,
  type SessionStatsView,
  type SessionSummaryView,
  type SessionView,
} from "./schemas.js";
import { sessionStats } from "./stats.js";

type SessionRow = Prisma.SessionGetPayload<object>;
type SessionWithContent = Prisma.SessionGetPayload<{ include: { content: true; events: true } }>;

/** The metadata columns a listing reads: never the bodies, never the events. */
function toSummary(row: SessionRow): SessionSummaryView {
  return {
    id: row.id,
    receivedAt: row.receivedAt.toISOString(),
    firstByteAt: row.firstByteAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    subject:
      row.subjectId === null
        ? null
        : {
            id: row.subjectId,
            email: row.subjectEmail,
            name: row.subjectName,
            groups: row.subjectGroups,
            authMethod: row.authMethod,
          },
    clientIp: row.clientIp,
    userAgent: row.userAgent,
    connection: row.connection,
    model: row.model,
    agentId: row.agentId,
    endpoint: row.endpoint,
    method: row.method,
    decision: row.decision,
    policyIds: row.policyIds,
    reason: row.reason,
    responseStatus: row.responseStatus,
    latencyMs: row.latencyMs,
    ttfbMs: row.ttfbMs,
    ttftMs: row.ttftMs,
    usage: { promptTokens: row.promptTokens, completionTokens: row.completionTokens, totalTokens: row.totalTokens },
  };
}

function toView(row: SessionWithContent): SessionView {
  return {
    ...toSummary(row),
    details: (row.details as Record<string, unknown> | null) ?? null,
    content: row.content
      ? {
          requestBody: row.content.requestBody,
          responseBody: row.content.responseBody,
          truncated: row.content.truncated,
        }
      : null,
    events: row.events.map(({ seq, offsetMs, data }) => ({ seq, offsetMs, data })),
    hash: row.hash,
    prevHash: row.prevHash,
  };
}

interface BodyDetails {
  bytes?: unknown;
  truncated?: unknown;
}

/** The size and truncation the gateway saw for one body, from `details` (recorded per body since record version 1). */
function bodyFacts(details: Record<string, unknown> | null, which: "request" | "response", fallbackTruncated: boolean) {
  const facts = details?.[which] as BodyDetails | undefined;
  return {
    truncated: typeof facts?.truncated === "boolean" ? facts.truncated : fallbackTruncated,
    bytes: typeof facts?.bytes === "number" ? facts.bytes : null,
  };
}

function toReplay(row: SessionWithContent): SessionReplayView {
  const details = (row.details as Record<string, unknown> | null) ?? null;
  const events = row.events.map(({ seq, offsetMs, data }) => ({ seq, offsetMs, data }));
  const responseBody = row.content?.responseBody ?? null;
  // content.truncated is "either body was cut": the per-body flag in details is preferred.
  const eitherTruncated = row.content?.truncated ?? false;
  return {
    id: row.id,
    receivedAt: row.receivedAt.toISOString(),
    decision: row.decision,
    request: {
      method: row.method,
      endpoint: row.endpoint,
      connection: row.connection,
      model: row.model,
      body: row.content?.requestBody ?? null,
      ...bodyFacts(details, "request", eitherTruncated),
    },
    response: {
      status: row.responseStatus,
      contentType: responseContentType(details, events, responseBody),
      body: responseBody,
      ...bodyFacts(details, "response", eitherTruncated),
      streamed: events.length > 0,
    },
    ttfbMs: row.ttfbMs,
    latencyMs: row.latencyMs,
    events,
  };
}

/** Backslash is Postgres' default LIKE escape character. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}

/** The listing's filters except `q`, which `list` resolves itself (below). */
function whereOf(query: SessionListQuery): Prisma.SessionWhereInput {
  const and: Prisma.SessionWhereInput[] = [];
  if (query.user) and.push({ OR: [{ subjectId: query.user }, { subjectEmail: query.user }] });
  if (query.group) and.push({ subjectGroups: { has: query.group } });
  if (query.connection) and.push({ connection: query.connection });
  if (query.model) and.push({ model: query.model });
  if (query.decision) and.push({ decision: query.decision });
  if (query.from) and.push({ receivedAt: { gte: new Date(query.from) } });
  if (query.to) and.push({ receivedAt: { lt: new Date(query.to) } });
  if (query.cursor) {
    const { receivedAt, id } = query.cursor;
    // Keyset on (receivedAt, id) descending, served by the index of the same
    // order: a page never repeats or skips a session, however many arrive meanwhile.
    // The OR alone is no index condition: Postgres walked the index from the
    // newest session and filtered, seconds for a page deep in a million
    // sessions. The redundant `receivedAt <= cursor` is one, so the scan
    // starts at the cursor (docs/benchmarks.md, session listing).
    and.push({ receivedAt: { lte: receivedAt } });
    and.push({ OR: [{ receivedAt: { lt: receivedAt } }, { receivedAt, id: { lt: id } }] });
  }
  return { AND: and };
}

const NEWEST_FIRST = [{ receivedAt: "desc" }, { id: "desc" }] satisfies Prisma.SessionOrderByWithRelationInput[];

export interface SessionServiceOptions {
  db: Database;
  /**
   * How many sessions `q` may check by walking the newest ones before the
   * search is handed to the trigram indexes (ten times more once the text
   * was found among them). Tests set 0 (the index way
   * only) and a large number (walking only) to compare the two.
   */
  textWalkBudget?: number;
  /** At most this many matching bodies make a text rare (tests set 0 to reach the single-query way). */
  rareTextLimit?: number;
  /** The clock the statistics' windows end at (tests fix it). */
  now?: () => Date;
}

/**
 * Why `q` first walks the newest sessions instead of putting the text
 * condition into one query: Postgres estimates how many bodies an ILIKE
 * matches from the column's statistics, and ANALYZE keeps none for values
 * over 1 kB, which most request bodies are (system prompts, chat history).
 * Without them it takes every text for a rare one and reads all its matches
 * through the trigram index before sorting: 2.3 s for a word in 8 % of a
 * million bodies. Checking the newest few thousand sessions first finds a
 * page of a common text in one or two round trips whatever the statistics
 * say; a rare one is left to the trigram indexes, where the estimate's
 * error does no harm.
 */
const TEXT_WALK_BUDGET = 2000;
/**
 * A text in at most this many bodies is listed from their ids. Postgres can
 * misjudge a rare text too: one that happened to be in ANALYZE's sample was
 * estimated at 10,000 matches and planned as a walk of the whole table (7.7 s).
 */
const RARE_TEXT_LIMIT = 5000;
/** The first walking step, then doubled: a page of a common text is usually in the first. */
const FIRST_WALK_BATCH = 400;
const MAX_WALK_BATCH = 5000;
/** How much further the walk may go for a text found often enough among the first sessions. */
const EXTENDED_WALK_FACTOR = 10;

const textCondition = (text: string): Prisma.SessionWhereInput => {
  // Prisma passes the text into the LIKE pattern as is, so its wildcards are
  // escaped here: a search for "%" finds a percent sign, not everything.
  const contains = { contains: escapeLike(text), mode: "insensitive" as const };
  return {
    content: {
      is: {
        OR: [
          { requestBody: contains },
          { responseText: contains },
          { AND: [{ responseText: null }, { responseBody: contains }] },
        ],
      },
    },
  };
};

export function createSessionService({
  db,
  textWalkBudget = TEXT_WALK_BUDGET,
  rareTextLimit = RARE_TEXT_LIMIT,
  now = () => new Date(),
}: SessionServiceOptions) {
  /** The sessions among `ids` whose request or response body contains the pattern. */
  async function bodiesMatching(ids: string[], pattern: string): Promise<Set<string>> {
    // COALESCE makes the condition one no index serves, so Postgres looks
    // these ids up by primary key instead of reading every match of a common
    // text through the trigram index. Same result: a null body matches nothing.
    const rows = await db.$queryRaw<{ session_id: string }[]>`
      SELECT session_id FROM session_contents
      WHERE session_id = ANY(${ids}::text[])
        AND (COALESCE(request_body, '') ILIKE ${pattern}
          OR COALESCE(response_text, response_body, '') ILIKE ${pattern})`;
    return new Set(rows.map((row) => row.session_id));
  }

  /**
   * Walks the sessions passing the other filters newest first, keeping those
   * whose bodies contain `text`, until `wanted` are found, the sessions run
   * out (the answer is then complete too) or the budget is spent (undefined:
   * the caller asks the indexes).
   */
  async function walkForText(query: SessionListQuery, text: string, wanted: number): Promise<string[] | undefined> {
    const pattern = `%${escapeLike(text)}%`;
    const found: string[] = [];
    let cursor = query.cursor;
    let checked = 0;
    let batch = Math.max(FIRST_WALK_BATCH, wanted * 4);
    // A text found often enough in the first sessions that the rest of its
    // page is projected within the extended budget is worth walking on for:
    // at 1 % a page is about 10,000 sessions away, which is cheaper to walk
    // than its bodies are to fetch through the index (measured: 435 ms p95
    // for a word in 1 % of a million bodies without this). One found by
    // chance (a word in 0.05 %) is not: the index is the faster way there.
    const extended = textWalkBudget * EXTENDED_WALK_FACTOR;
    const budget = () =>
      found.length > 0 && (checked * wanted) / found.length <= extended ? extended : textWalkBudget;
    while (checked < budget()) {
      const take = Math.min(batch, budget() - checked);
      const candidates = await db.session.findMany({
        where: whereOf({ ...query, cursor }),
        orderBy: NEWEST_FIRST,
        take,
        select: { id: true, receivedAt: true },
      });
      checked += candidates.length;
      const matching = candidates.length
        ? await bodiesMatching(
            candidates.map((row) => row.id),
            pattern,
          )
        : new Set();
      for (const candidate of candidates) {
        if (!matching.has(candidate.id)) continue;
        found.push(candidate.id);
        if (found.length === wanted) return found;
      }
      const last = candidates.at(-1);
      if (candidates.length < take || !last) return found;
      cursor = { receivedAt: last.receivedAt, id: last.id };
      batch = Math.min(MAX_WALK_BATCH, batch * 2);
    }
    return undefined;
  }

  /**
   * The sessions whose bodies contain `text`, through the trigram indexes,
   * when there are at most `limit` (undefined when there are more). The
   * query reads session_contents alone with sequential scans off: the
   * trigram index is its only way, however Postgres estimates the text.
   */
  async function rareTextSessions(text: string, limit: number): Promise<string[] | undefined> {
    const pattern = `%${escapeLike(text)}%`;
    // Under three characters there is no trigram to look up: let Postgres scan.
    const indexable = text.length >= 3;
    const rows = await db.$transaction(async (tx) => {
      if (indexable) await tx.$executeRaw`SET LOCAL enable_seqscan = off`;
      return tx.$queryRaw<{ session_id: string }[]>`
        SELECT session_id FROM session_contents
        WHERE request_body ILIKE ${pattern} OR response_text ILIKE ${pattern}
          OR (response_text IS NULL AND response_body ILIKE ${pattern})
        LIMIT ${limit + 1}`;
    });
    return rows.length > limit ? undefined : rows.map((row) => row.session_id);
  }

  return {
    /** Newest first, metadata only. */
    async list(query: SessionListQuery): Promise<Page<SessionSummaryView>> {
      const take = query.limit + 1;
      let where = whereOf(query);
      if (query.q) {
        // A case-insensitive substring match (ILIKE) of the request body or
        // the answer (a stream by its text, see answerSearchText): first
        // among the newest sessions, then, for a text too rare among them, all
        // its sessions through the trigram indexes (migration
        // 20261126110000) when they are few, else one query with the text
        // condition, planned by Postgres.
        const ids = (await walkForText(query, query.q, take)) ?? (await rareTextSessions(query.q, rareTextLimit));
        where = { AND: [where, ids ? { id: { in: ids } } : textCondition(query.q)] };
      }
      const rows = await db.session.findMany({ where, orderBy: NEWEST_FIRST, take });
      const items = rows.slice(0, query.limit);
      const last = items.at(-1);
      return {
        items: items.map(toSummary),
        nextCursor: rows.length > query.limit && last ? encodeCursor(last) : null,
      };
    },

    /** Requests, refusals and masking over the last hour or day, for the console's Overview. */
    stats(query: SessionStatsQuery): Promise<SessionStatsView> {
      return sessionStats(db, query.window, now());
    },

    /** The full record: metadata, details, bodies and the stream's events in order. */
    async get(id: string): Promise<SessionView> {
      const row = await db.session.findUnique({
        where: { id },
        include: { content: true, events: { orderBy: { seq: "asc" } } },
      });
      if (!row) throw notFound(`no session with id ${id}`);
      return toView(row);
    },

    /** What a replay needs: the request, the response and the timed events. */
    async replay(id: string): Promise<SessionReplayView> {
      const row = await db.session.findUnique({
        where: { id },
        include: { content: true, events: { orderBy: { seq: "asc" } } },
      });
      if (!row) throw notFound(`no session with id ${id}`);
      return toReplay(row);
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
