import type { Refusal } from "./address-policy.js";

/** A delivery failure whose message is safe to store and show an admin: no secret, no response body. */
export class DeliveryError extends Error {
  override name = "DeliveryError";
}

/**
 * The destination's address is one exporters may not reach. Thrown before
 * any packet is sent there: when an exporter is created or replaced, before
 * a literal address is dialled, and from the socket's lookup each time a
 * name is resolved to connect.
 */
export class DestinationRefused extends DeliveryError {
  override name = "DestinationRefused";
  readonly refusal: Refusal;

  /** `host` as configured; `address` what was checked (the host itself when it is an address literal). */
  constructor(host: string, address: string, refusal: Refusal) {
    const notes = [
      ...(address === host ? [] : [`resolved to ${address}`]),
      ...(refusal.embedded ? [`${refusal.embedded.form} ${refusal.embedded.address}`] : []),
    ];
    const subject = notes.length === 0 ? host : `${host} (${notes.join(", ")})`;
    super(
      `${subject} is in a ${refusal.kind} range (${refusal.range}); exporters reach such addresses only inside MODELGATE_EXPORT_ALLOW_CIDRS`,
    );
    this.refusal = refusal;
  }
}
