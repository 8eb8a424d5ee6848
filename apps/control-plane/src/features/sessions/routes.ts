import { defineRoute, StreamedResponse } from "../../http/route.js";
import { page } from "../../http/schemas.js";
import { streamReplay } from "./replay.js";
import {
  sessionListQuery,
  sessionParams,
  sessionReplayQuery,
  sessionReplayView,
  sessionStatsQuery,
  sessionStatsView,
  sessionSummaryView,
  sessionView,
} from "./schemas.js";
import type { SessionService } from "./service.js";

/** Sessions hold prompts and answers: auditors and admins only. */
export const SESSION_ROLES = ["admin", "auditor"] as const;

export function sessionRoutes(service: Pick<SessionService, "list" | "stats" | "get" | "replay">) {
  return [
    defineRoute({
      method: "get",
      path: "/sessions",
      operationId: "listSessions",
      summary: "Audit sessions (one per gateway request), newest first, metadata only",
      tag: "audit",
      role: SESSION_ROLES,
      query: sessionListQuery,
      response: { status: 200, description: "A page of sessions", schema: page(sessionSummaryView) },
      handler: ({ query }) => service.list(query),
    }),
    // Declared before /sessions/{id}, which would otherwise take "stats" for an id.
    defineRoute({
      method: "get",
      path: "/sessions/stats",
      operationId: "getSessionStats",
      summary:
        "Requests, refusals and masked answers over the last hour or day: per bucket, in total, by refusal reason and by connection",
      tag: "audit",
      role: SESSION_ROLES,
      query: sessionStatsQuery,
      response: { status: 200, description: "The window's statistics", schema: sessionStatsView },
      handler: ({ query }) => service.stats(query),
    }),
    defineRoute({
      method: "get",
      path: "/sessions/{id}",
      operationId: "getSession",
      summary: "One audit session in full: request and response bodies and the response stream's events",
      tag: "audit",
      role: SESSION_ROLES,
      params: sessionParams,
      response: { status: 200, description: "The session", schema: sessionView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.id),
    }),
    defineRoute({
      method: "get",
      path: "/sessions/{id}/replay",
      operationId: "replaySession",
      summary:
        "Replay a session: the request and the timed response events, or the response re-streamed with its original timing",
      tag: "audit",
      role: SESSION_ROLES,
      params: sessionParams,
      query: sessionReplayQuery,
      response: {
        status: 200,
        description: "The replay (format=json), or the re-streamed response (format=sse or native)",
        schema: sessionReplayView,
        streams: {
          "text/event-stream":
            "format=sse: one event per chunk, data {seq, offsetMs, data}, id = seq; then `event: end` with data {events}",
          "*/*": "format=native: the chunks' bytes as the client received them, with the response's content type",
        },
      },
      errors: ["not_found"],
      async handler({ params, query }) {
        const replay = await service.replay(params.id);
        const { format } = query;
        if (format === "json") return replay;
        const speed = query.timing === "none" ? 0 : (query.speed ?? 1);
        return new StreamedResponse((_req, res) => streamReplay(res, replay, { format, speed }));
      },
    }),
  ];
}
