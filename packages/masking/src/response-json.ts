import { type MaskCounts, MaskingError } from "./masker.js";
import type { JsonDocument } from "./response-selector.js";

const { rawJSON } = JSON as unknown as { rawJSON?: (text: string) => unknown };

/**
 * A number whose text `JSON.stringify` might not reproduce: a fraction or
 * exponent, 16 or more digits (beyond float64's exact integers), or `-0`.
 * A number follows `:`, `,`, `[` or starts the document; inside a string the
 * same characters only cause a false alarm, which costs the slower exact
 * parse and nothing else.
 */
const INEXACT_NUMBER = /(?:^|[:,[])[ \t\r\n]*(?:-?[0-9]+[.eE]|-?[0-9]{16}|-0(?![0-9.eE]))/;

/**
 * Parses JSON so that serialising it again gives every number its source
 * text: `1.0` stays `1.0` and `12345678901234567891` is not rounded to a
 * float64. Only numbers whose text would change are wrapped (`JSON.rawJSON`),
 * so ordinary integers such as a tool call's `index` stay numbers. The
 * reviver that does this costs several times a plain parse, so a document
 * without such numbers (a typical stream event) gets the plain parse.
 *
 * `what` names the document in the error. The parser's own message is not
 * used: it quotes the input, which is the unmasked response.
 */
export function parseJson(text: string, what: string): JsonDocument {
  try {
    if (!rawJSON || !INEXACT_NUMBER.test(text)) return [JSON.parse(text)];
    return [
      JSON.parse(text, (_key, value, context?: { source?: string }) =>
        typeof value === "number" && context?.source !== undefined && context.source !== String(value)
          ? rawJSON(context.source)
          : value,
      ),
    ];
  } catch {
    throw new MaskingError(`${what} is not valid JSON`);
  }
}

export function serializeJson(document: JsonDocument): string {
  return JSON.stringify(document[0]);
}

/** Adds `more` into `total`. */
export function addCounts(total: MaskCounts, more: MaskCounts): void {
  for (const [entity, count] of Object.entries(more)) total[entity] = (total[entity] ?? 0) + count;
}

/** Sets the value a match selected. */
export function replaceValue(parent: Record<string, unknown> | unknown[], key: string | number, value: unknown): void {
  (parent as Record<string | number, unknown>)[key] = value;
}
