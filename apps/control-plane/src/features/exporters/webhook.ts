import { createHmac } from "node:crypto";
import { fetch } from "undici";
import { DeliveryError } from "./delivery-error.js";
import type { ExportEgress } from "./egress.js";
import type { SiemEvent } from "./events.js";

const SIGNATURE_HEADER = "x-modelgate-signature";
const EVENT_ID_HEADER = "x-modelgate-event-id";
const EVENT_TYPE_HEADER = "x-modelgate-event-type";

export interface WebhookTarget {
  url: string;
  timeoutMs: number;
  secret: string;
}

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The timestamp is
 * inside the signed text, so a receiver that rejects old timestamps also
 * rejects a captured request replayed later.
 */
function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`, "utf8").digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * POSTs one event. Success is a 2xx answer within the timeout; anything else
 * throws, and the export queue retries with backoff. Redirects are not
 * followed: a signed event goes only where an admin pointed it, and a 3xx
 * cannot lead the control plane to an address the egress policy would
 * refuse. Connections go through `egress`, which checks each address dialled.
 */
export async function deliverWebhook(
  target: WebhookTarget,
  event: SiemEvent,
  egress: ExportEgress,
  now = new Date(),
): Promise<void> {
  const body = JSON.stringify(event);
  await egress.checkBeforeDial(new URL(target.url).hostname);
  let response: Awaited<ReturnType<typeof fetch>>;
  try {
    response = await fetch(target.url, {
      method: "POST",
      redirect: "manual",
      dispatcher: egress.dispatcher,
      signal: AbortSignal.timeout(target.timeoutMs),
      headers: {
        "content-type": "application/json",
        "user-agent": "modelgate-exporter/1",
        [EVENT_ID_HEADER]: event.id,
        [EVENT_TYPE_HEADER]: event.type,
        [SIGNATURE_HEADER]: signWebhook(target.secret, body, Math.floor(now.getTime() / 1000)),
      },
      body,
    });
  } catch (error) {
    // The egress lookup's refusal, raised inside the socket, arrives as the cause.
    const cause = (error as { cause?: unknown } | undefined)?.cause;
    if (cause instanceof DeliveryError) throw cause;
    throw new DeliveryError(describeFetchError(error, target.timeoutMs));
  }
  // The receiver's body is not ours to keep; read none of it.
  await response.body?.cancel().catch(() => undefined);
  if (response.status < 200 || response.status > 299) {
    throw new DeliveryError(`the receiver answered HTTP ${response.status}`);
  }
}

function describeFetchError(error: unknown, timeoutMs: number): string {
  // Duck-typed rather than instanceof: fetch's errors may come from another realm.
  const failure = error as { name?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  if (failure?.name === "TimeoutError" || failure?.name === "AbortError") return `no answer within ${timeoutMs} ms`;
  const code = failure?.cause?.code;
  if (typeof code === "string") return `the request failed: ${code}`;
  // undici refuses the ports browsers block (fetch's "bad port" list, e.g. 514) with this message.
  return failure?.cause?.message === "bad port"
    ? "the request failed: the port is blocked for HTTP"
    : "the request failed";
}
