import type { IncomingHttpHeaders } from "node:http";
import {
  CHUNK_COUNT_BOUNDS,
  describeBounds,
  ERROR_STATUS_BOUNDS,
  type IntegerBounds,
  MILLISECONDS_BOUNDS,
  parseBoundedInteger,
} from "./bounds.js";
import { FixtureRequestError } from "./protocol-errors.js";

/**
 * Per-request shaping of an answer, so one running fixture can serve a
 * benchmark's slow streams and a test's forced errors side by side.
 */
export interface Overrides {
  /** `x-fixture-chunks`: content chunks in a streamed answer. */
  chunks?: number;
  /** `x-fixture-interval-ms`: delay between streamed chunks. */
  intervalMs?: number;
  /** `x-fixture-delay-ms`: delay before the response head is sent. */
  delayMs?: number;
  /** `x-fixture-status`: answer with this error status and the protocol's error body. */
  status?: number;
}

const OVERRIDE_HEADERS: ReadonlyArray<readonly [keyof Overrides, string, IntegerBounds]> = [
  ["chunks", "x-fixture-chunks", CHUNK_COUNT_BOUNDS],
  ["intervalMs", "x-fixture-interval-ms", MILLISECONDS_BOUNDS],
  ["delayMs", "x-fixture-delay-ms", MILLISECONDS_BOUNDS],
  ["status", "x-fixture-status", ERROR_STATUS_BOUNDS],
];

/** Reads the override headers; throws a 400 naming the first invalid one. */
export function parseOverrides(headers: IncomingHttpHeaders): Overrides {
  const overrides: Overrides = {};
  for (const [key, header, bounds] of OVERRIDE_HEADERS) {
    const raw = headers[header];
    if (raw === undefined) continue;
    // A repeated header arrives joined with ", " and fails the digits-only check.
    const value = typeof raw === "string" ? parseBoundedInteger(raw, bounds) : undefined;
    if (value === undefined) {
      throw new FixtureRequestError(400, `invalid ${header} header: expected ${describeBounds(bounds)}`, {
        param: header,
        code: "invalid_fixture_override",
      });
    }
    overrides[key] = value;
  }
  return overrides;
}
