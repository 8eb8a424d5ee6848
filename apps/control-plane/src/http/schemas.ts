import { z } from "zod";

/** Schemas shared by several features. */

/**
 * No control characters (C0, DEL, C1), which hide things in logs and
 * terminals, and no lone UTF-16 surrogates, which are not text at all and
 * would be stored as U+FFFD or refused by the database.
 */
const PLAIN_TEXT = /^[^\p{Cc}\p{Cs}]*$/u;

/** Connection and agent names: DNS-label-like, so they fit in URLs and model ids. */
export const resourceName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit");

/** A human-readable label, such as an API key's name. */
export const label = (max: number) =>
  z.string().trim().min(1).max(max).regex(PLAIN_TEXT, "must be text without control characters");

/** Group names as identity providers spell them (Okta names have spaces, Entra ids are GUIDs). */
export const groupName = label(256);

export const uuid = z.uuid({ error: "must be a UUID" });

export const timestamp = z.iso.datetime({ offset: true });

export function uniqueList<T extends z.ZodType>(item: T, max: number) {
  return z
    .array(item)
    .max(max)
    .refine((items) => new Set(items).size === items.length, "must not contain duplicates");
}

export const pageQuery = <C extends z.ZodType>(cursor: C) =>
  z.strictObject({
    limit: z.coerce.number().int().min(1).max(500).default(100).describe("page size, 1-500"),
    cursor: cursor.optional().describe("the nextCursor of the previous page"),
  });

export const page = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z.string().nullable().describe("pass as ?cursor= for the next page; null on the last page"),
  });

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Cuts a `limit + 1` query result into a page and the cursor that follows it. */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  cursorOf: (row: Row) => string,
  view: (row: Row) => Item,
): Page<Item> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(view),
    nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null,
  };
}
