import type { Database, Prisma } from "@modelgate/db";
import { notFound } from "../../http/errors.js";
import type { Page } from "../../http/schemas.js";
import { responseContentType } from "./replay.js";
import {
  encodeCursor,
  type SessionListQuery,
  type SessionReplayView,
  type SessionSummaryView,
  type SessionView,
} from "./schemas.js";

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

function whereOf(query: SessionListQuery): Prisma.SessionWhereInput {
  const and: Prisma.SessionWhereInput[] = [];
  if (query.user) and.push({ OR: [{ subjectId: query.user }, { subjectEmail: query.user }] });
  if (query.group) and.push({ subjectGroups: { has: query.group } });
  if (query.connection) and.push({ connection: query.connection });
  if (query.model) and.push({ model: query.model });
  if (query.decision) and.push({ decision: query.decision });
  if (query.from) and.push({ receivedAt: { gte: new Date(query.from) } });
  if (query.to) and.push({ receivedAt: { lt: new Date(query.to) } });
  if (query.q) {
    // A case-insensitive substring match (ILIKE). With a pattern of three
    // characters or more the trigram indexes on both bodies can answer it
    // (migration 20261126110000); Postgres picks per query between them (a
    // rare text) and walking the newest sessions first (a common one).
    // Prisma passes the text into the LIKE pattern as is, so its wildcards
    // are escaped here: a search for "%" finds a percent sign, not everything.
    const contains = { contains: escapeLike(query.q), mode: "insensitive" as const };
    and.push({ content: { is: { OR: [{ requestBody: contains }, { responseBody: contains }] } } });
  }
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

export function createSessionService({ db }: { db: Database }) {
  return {
    /** Newest first, metadata only. */
    async list(query: SessionListQuery): Promise<Page<SessionSummaryView>> {
      const rows = await db.session.findMany({
        where: whereOf(query),
        orderBy: [{ receivedAt: "desc" }, { id: "desc" }],
        take: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      const last = items.at(-1);
      return {
        items: items.map(toSummary),
        nextCursor: rows.length > query.limit && last ? encodeCursor(last) : null,
      };
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
