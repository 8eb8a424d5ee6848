// sessions, approvals, audit verify, exporters test: reading and acting on
// what gateways recorded and held.
import { setTimeout as sleep } from "node:timers/promises";
import { textOfChunk } from "@modelgate/audit/replay-text";
import type { Command } from "commander";
import { contextOf, examples, wholeNumber } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { safeText } from "../output.js";

interface SessionSummary {
  id: string;
  receivedAt: string;
  subject: { id: string; email: string | null } | null;
  connection: string | null;
  model: string | null;
  decision: string;
  responseStatus: number | null;
  latencyMs: number | null;
}

interface ReplayEvent {
  seq: number;
  offsetMs: number;
  data: string;
}

interface VerifyPart {
  status: "ok" | "broken";
  checked: number;
  contentPurged: number;
  start: { kind: string; chainSeq: number };
  complete?: boolean;
  headChainSeq: number;
  lastChainSeq?: number;
  headHash?: string | null;
  firstBrokenAt?: { sessionId: string | null; chainSeq: number; reason: string; detail: string };
}

/** Sessions verified per request by `audit verify`: a few seconds of the control plane's work each. */
const VERIFY_PART = 20_000;
/** Page size for listings, 1-500 as the API takes it. */
const pageSize = wholeNumber("--limit", 1, 500);

interface Approval {
  id: string;
  status: string;
  subject: { id: string; email: string | null };
  connection: string;
  model: string;
  policy: { id: string; name: string };
  reason: string;
  requestedAt: string;
  expiresAt: string;
}

export function registerAudit(program: Command): void {
  const sessions = program.command("sessions").description("Recorded sessions: who asked what, and what they got");
  examples(
    sessions
      .command("list")
      .description("Sessions newest first, filtered; one page (follow --cursor for the next)")
      .option("--user <id-or-email>", "the caller's subject id or email")
      .option("--group <group>", "callers in this group")
      .option("--connection <name>", "requests to this connection")
      .option("--model <model>", "requests for this model")
      .option(
        "--decision <decision>",
        "allowed, masked, blocked, approval_required, approved, denied, rate_limited, error",
      )
      .option("--from <time>", "received at or after (RFC 3339)")
      .option("--to <time>", "received before (RFC 3339)")
      .option("-q, --text <text>", "text in the prompt or the answer")
      .option("--limit <n>", "page size, 1-500", pageSize, 50)
      .option("--cursor <cursor>", "the next page, as the previous one printed it")
      .action(async (options, command: Command) => {
        const { out, api } = contextOf(command);
        const page = await (await api()).get<{ items: SessionSummary[]; nextCursor: string | null }>("/sessions", {
          user: options.user,
          group: options.group,
          connection: options.connection,
          model: options.model,
          decision: options.decision,
          from: options.from,
          to: options.to,
          q: options.text,
          limit: options.limit,
          cursor: options.cursor,
        });
        out.result(page, () => {
          out.table(page.items, [
            { title: "id", value: (row) => row.id },
            { title: "received", value: (row) => row.receivedAt },
            { title: "subject", value: (row) => row.subject?.email ?? row.subject?.id },
            { title: "connection", value: (row) => row.connection },
            { title: "model", value: (row) => row.model },
            { title: "decision", value: (row) => row.decision },
            { title: "status", value: (row) => row.responseStatus },
            { title: "ms", value: (row) => row.latencyMs },
          ]);
          if (page.nextCursor) out.note(`more: add --cursor ${page.nextCursor}`);
        });
      }),
    [
      "modelgate sessions list --user alice@example.com --from 2026-12-01T00:00:00Z",
      "modelgate sessions list --decision blocked --connection llama --json",
      'modelgate sessions list -q "quarterly report"',
    ],
  );
  examples(
    sessions
      .command("show <id>")
      .description("One session in full: request, decision, masking, answer")
      .action(async (id: string, _options, command: Command) => {
        const { out, api } = contextOf(command);
        const session = await (await api()).get<Record<string, unknown> & SessionSummary>(
          `/sessions/${encodeURIComponent(id)}`,
        );
        out.result(session, () => {
          const content = session.content as { requestBody: string | null; responseBody: string | null } | null;
          const details = (session.details ?? {}) as { maskedCounts?: Record<string, number> };
          out.line(`session   ${session.id}`);
          out.line(`received  ${session.receivedAt}`);
          out.line(`subject   ${safeText(session.subject?.email ?? session.subject?.id ?? "-")}`);
          out.line(`target    ${session.connection ?? "-"} / ${session.model ?? "-"}`);
          out.line(
            `decision  ${session.decision} (status ${session.responseStatus ?? "-"}, ${session.latencyMs ?? "-"} ms)`,
          );
          if (session.reason) out.line(`reason    ${safeText(String(session.reason))}`);
          if (details.maskedCounts) out.line(`masked    ${JSON.stringify(details.maskedCounts)}`);
          out.line();
          out.line("request:");
          out.line(safeText(content?.requestBody ?? "-"));
          out.line();
          out.line("response:");
          out.line(safeText(content?.responseBody ?? "-"));
        });
      }),
    ["modelgate sessions show 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f"],
  );
  examples(
    sessions
      .command("replay <id>")
      .description("Print the answer's text at the pace it was delivered")
      .option("--speed <factor>", "faster (2) or slower (0.5) than it happened; 0 prints at once", Number, 1)
      .action(async (id: string, options: { speed: number }, command: Command) => {
        const { out, api } = contextOf(command);
        if (!Number.isFinite(options.speed) || options.speed < 0 || options.speed > 100) {
          throw new CliError("--speed must be a number from 0 to 100", EXIT.usage);
        }
        const replay = await (await api()).get<{ events: ReplayEvent[]; response: { body: string | null } }>(
          `/sessions/${encodeURIComponent(id)}/replay`,
          { format: "json" },
        );
        if (out.json) {
          out.line(JSON.stringify(replay, null, 2));
          return;
        }
        if (replay.events.length === 0) {
          // Not streamed: the answer arrived whole.
          out.line(safeText(replay.response.body ?? ""));
          return;
        }
        const started = performance.now();
        for (const event of replay.events) {
          if (options.speed > 0) {
            const due = event.offsetMs / options.speed - (performance.now() - started);
            if (due > 0) await sleep(due);
          }
          process.stdout.write(safeText(textOfChunk(event.data)));
        }
        out.line();
      }),
    ["modelgate sessions replay 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f", "modelgate sessions replay <id> --speed 4"],
  );

  const approvals = program.command("approvals").description("Requests held for a human's decision");
  examples(
    approvals
      .command("list")
      .description("Approvals, newest first")
      .option("--status <status>", "pending, approved, denied or expired", "pending")
      .option("--connection <name>", "requests to this connection")
      .option("--limit <n>", "page size, 1-500", pageSize, 100)
      .action(async (options: { status: string; connection?: string; limit: number }, command: Command) => {
        const { out, api } = contextOf(command);
        const page = await (await api()).get<{ items: Approval[]; nextCursor: string | null }>("/approvals", {
          status: options.status,
          connection: options.connection,
          limit: options.limit,
        });
        out.result(page, () =>
          out.table(page.items, [
            { title: "id", value: (row) => row.id },
            { title: "status", value: (row) => row.status },
            { title: "subject", value: (row) => row.subject.email ?? row.subject.id },
            { title: "target", value: (row) => `${row.connection}/${row.model}` },
            { title: "policy", value: (row) => row.policy.name },
            { title: "reason", value: (row) => row.reason },
            { title: "expires", value: (row) => row.expiresAt },
          ]),
        );
      }),
    ["modelgate approvals list", "modelgate approvals list --status denied --json"],
  );
  for (const decision of ["approve", "deny"] as const) {
    examples(
      approvals
        .command(`${decision} <id>`)
        .description(decision === "approve" ? "Approve a held request" : "Deny a held request")
        .option("--comment <text>", decision === "deny" ? "why (the caller sees it)" : "why")
        .action(async (id: string, options: { comment?: string }, command: Command) => {
          const { out, api } = contextOf(command);
          const decided = await (await api()).post<Approval>(
            `/approvals/${encodeURIComponent(id)}/${decision}`,
            options.comment ? { comment: options.comment } : {},
          );
          out.result(decided, () => out.line(`Approval ${decided.id}: ${decided.status}.`));
        }),
      [`modelgate approvals ${decision} 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f --comment "ticket SEC-142"`],
    );
  }

  const audit = program.command("audit").description("The audit trail's integrity");
  examples(
    audit
      .command("verify")
      .description("Walk the hash chain over every stored session, showing progress; exit 1 when it is broken")
      .option("--from <seq>", "start at this chain sequence instead of the beginning")
      .option(
        "--part <n>",
        "sessions per request (progress is shown after each)",
        wholeNumber("--part", 1, 10_000_000),
        VERIFY_PART,
      )
      .action(async (options: { from?: string; part: number }, command: Command) => {
        const { out, api: client } = contextOf(command);
        const api = await client();
        let query: Record<string, string | number | undefined> = { from: options.from, limit: options.part };
        let checked = 0;
        let contentPurged = 0;
        let first: VerifyPart | undefined;
        let report: VerifyPart;
        for (;;) {
          report = await api.get<VerifyPart>("/audit/verify", query);
          first ??= report;
          checked += report.checked;
          contentPurged += report.contentPurged;
          if (report.status !== "ok" || report.complete) break;
          if (!out.json) {
            const total = Math.max(report.headChainSeq - first.start.chainSeq + 1, checked);
            out.note(
              `verified ${checked.toLocaleString("en")} of ${total.toLocaleString("en")} sessions (${Math.floor((100 * checked) / total)} %) …`,
            );
          }
          query = {
            from: (report.lastChainSeq as number) + 1,
            prevHash: report.headHash ?? undefined,
            limit: options.part,
          };
        }
        const summary = { ...report, checked, contentPurged, start: first.start };
        out.result(summary, () => {
          if (report.status === "ok") {
            out.line(
              `OK: ${checked.toLocaleString("en")} sessions verified, last chain sequence ${report.lastChainSeq}.`,
            );
            out.line(`Head hash ${report.headHash ?? "-"} (record it to compare later runs).`);
          } else {
            const broken = report.firstBrokenAt;
            out.line(
              `BROKEN after ${checked.toLocaleString("en")} sessions: ${broken?.reason} at chain sequence ${broken?.chainSeq}`,
            );
            out.line(`session ${broken?.sessionId ?? "-"}: ${broken?.detail}`);
          }
        });
        if (report.status !== "ok") process.exitCode = EXIT.failure;
      }),
    ["modelgate audit verify", "modelgate audit verify --json > verify-$(date +%F).json"],
  );

  const exporters = program.command("exporters").description("SIEM exporters");
  examples(
    exporters
      .command("test <id>")
      .description("Send a test event through an exporter and say whether it arrived")
      .action(async (id: string, _options, command: Command) => {
        const { out, api } = contextOf(command);
        const result = await (await api()).post<{ delivered: boolean; eventId: string; error: string | null }>(
          `/exporters/${encodeURIComponent(id)}/test`,
        );
        out.result(result, () =>
          out.line(
            result.delivered
              ? `Delivered (event ${result.eventId}).`
              : `Not delivered: ${safeText(result.error ?? "-")}. Check the exporter's address and credentials.`,
          ),
        );
        if (!result.delivered) process.exitCode = EXIT.failure;
      }),
    ["modelgate exporters test 0190f3c2-7a1e-7b3d-9c4f-1a2b3c4d5e6f"],
  );
}
