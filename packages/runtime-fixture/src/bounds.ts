/** An inclusive integer range that a setting or a header must fall in. */
export interface IntegerBounds {
  readonly min: number;
  readonly max: number;
}

// The same bounds apply to start-up options, CLI variables and per-request
// override headers, so a value accepted in one place is accepted everywhere.
export const CHUNK_COUNT_BOUNDS: IntegerBounds = { min: 1, max: 10_000 };
export const MILLISECONDS_BOUNDS: IntegerBounds = { min: 0, max: 60_000 };
export const PORT_BOUNDS: IntegerBounds = { min: 0, max: 65_535 };
export const ERROR_STATUS_BOUNDS: IntegerBounds = { min: 400, max: 599 };

/**
 * Parses plain decimal digits into an integer within `bounds`, or returns
 * undefined. Deliberately stricter than `Number()`/`parseInt()`, which accept
 * "", " 5", "5ms", "1e3" and "0x10": a typo in a benchmark header must fail
 * loudly rather than shape the answer in some unintended way.
 */
export function parseBoundedInteger(text: string, bounds: IntegerBounds): number | undefined {
  if (!/^[0-9]{1,9}$/.test(text)) return undefined;
  const value = Number(text);
  return isWithin(value, bounds) ? value : undefined;
}

export function isWithin(value: number, bounds: IntegerBounds): boolean {
  return Number.isInteger(value) && value >= bounds.min && value <= bounds.max;
}

export function describeBounds(bounds: IntegerBounds): string {
  return `an integer from ${bounds.min} to ${bounds.max}`;
}
