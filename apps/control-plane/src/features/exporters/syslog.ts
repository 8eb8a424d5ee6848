import { connect as connectTcp, isIP, type Socket } from "node:net";
import { hostname } from "node:os";
import { connect as connectTls } from "node:tls";
import type { AuditDecision } from "@modelgate/audit";
import { DeliveryError } from "./delivery-error.js";
import type { ExportEgress } from "./egress.js";
import type { SiemEvent } from "./events.js";

export interface SyslogTarget {
  host: string;
  port: number;
  tls: boolean;
  /** RFC 5424 facility, 0-23 (default 13, "log audit"). */
  facility: number;
  timeoutMs: number;
}

/** RFC 5424 severities. */
const SEVERITY = { alert: 1, error: 3, warning: 4, notice: 5, info: 6 } as const;

const DECISION_SEVERITY: Record<AuditDecision, number> = {
  allowed: SEVERITY.info,
  masked: SEVERITY.info,
  approved: SEVERITY.info,
  approval_required: SEVERITY.notice,
  blocked: SEVERITY.warning,
  denied: SEVERITY.warning,
  rate_limited: SEVERITY.warning,
  error: SEVERITY.error,
};

export function severityOf(event: SiemEvent): number {
  if (event.type === "alert") return SEVERITY.alert;
  if (event.type === "session") return DECISION_SEVERITY[event.session.decision];
  // Someone has to act on a new approval; its outcome is information.
  if (event.type === "approval") return event.approval.event === "requested" ? SEVERITY.notice : SEVERITY.info;
  return SEVERITY.notice;
}

/** RFC 5424 header fields are printable US-ASCII without spaces, each with a maximum length. */
function headerField(value: string, max: number): string {
  const printable = value.replace(/[^\x21-\x7e]/g, "").slice(0, max);
  return printable === "" ? "-" : printable;
}

const HOSTNAME = headerField(hostname(), 255);

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME modelgate PROCID MSGID - MSG`,
 * MSGID the event type, no structured data, MSG the event's JSON (UTF-8, no
 * BOM: JSON parsers downstream choke on one).
 */
export function formatSyslog(event: SiemEvent, facility: number, pid = process.pid): string {
  const priority = facility * 8 + severityOf(event);
  return `<${priority}>1 ${event.time} ${HOSTNAME} modelgate ${headerField(String(pid), 128)} ${headerField(event.type, 32)} - ${JSON.stringify(event)}`;
}

/** RFC 6587 octet counting: the message's length in bytes, a space, the message. */
function frameOctetCounted(message: string): Buffer {
  const bytes = Buffer.from(message, "utf8");
  return Buffer.concat([Buffer.from(`${bytes.length} `, "ascii"), bytes]);
}

/**
 * Sends one event on a connection of its own and closes it. TCP syslog has
 * no acknowledgement (RFC 6587): success means the frame was handed to the
 * operating system and the connection closed cleanly, not that the server
 * processed it. The socket resolves its host through `egress`, which
 * checks each address before it is dialled.
 */
export async function deliverSyslog(target: SyslogTarget, event: SiemEvent, egress: ExportEgress): Promise<void> {
  const frame = frameOctetCounted(formatSyslog(event, target.facility));
  await egress.checkBeforeDial(target.host);
  await new Promise<void>((resolve, reject) => {
    const socket: Socket = target.tls
      ? connectTls({
          host: target.host,
          port: target.port,
          lookup: egress.lookup,
          // SNI carries names only; an IP address is checked against the certificate's IP entries.
          ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
        })
      : connectTcp({ host: target.host, port: target.port, lookup: egress.lookup });
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve();
    };
    const timer = setTimeout(
      () => finish(new DeliveryError(`no delivery within ${target.timeoutMs} ms`)),
      target.timeoutMs,
    );
    socket.once(target.tls ? "secureConnect" : "connect", () => socket.end(frame));
    socket.once("error", (error: NodeJS.ErrnoException) =>
      // The egress lookup's refusal is already a DeliveryError saying why.
      finish(
        error instanceof DeliveryError
          ? error
          : new DeliveryError(`the syslog connection failed: ${error.code ?? "error"}`),
      ),
    );
    socket.once("close", (hadError) => {
      if (!hadError && socket.writableFinished) finish();
      else finish(new DeliveryError("the syslog connection closed before the event was sent"));
    });
  });
}
