import { FixtureRequestError } from "./protocol-errors.js";

export type JsonObject = Record<string, unknown>;

// Runtimes answer a body that is not JSON with 400; field checks below use
// the status the route's runtime uses for invalid fields (TGI says 422).

export function parseJsonObject(body: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new FixtureRequestError(400, "the request body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FixtureRequestError(400, "the request body must be a JSON object");
  }
  return value as JsonObject;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A boolean field; absent or null gives undefined. */
export function optionalBoolean(body: JsonObject, key: string, status = 400): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new FixtureRequestError(status, `"${key}" must be a boolean`, { param: key });
  return value;
}

/** An integer field of at least `min`; absent or null gives undefined. */
export function optionalInteger(body: JsonObject, key: string, min: number, status = 400): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new FixtureRequestError(status, `"${key}" must be an integer of at least ${min}`, { param: key });
  }
  return value;
}

/** An object field; absent or null gives an empty object. */
export function optionalObject(body: JsonObject, key: string, status = 400): JsonObject {
  const value = body[key];
  if (value === undefined || value === null) return {};
  if (!isJsonObject(value)) throw new FixtureRequestError(status, `"${key}" must be an object`, { param: key });
  return value;
}

/**
 * The text inside a prompt or message list, for counting prompt tokens:
 * strings, arrays of them, and `{text}`/`{content}` parts at any depth.
 */
export function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(textOf).join(" ");
  if (isJsonObject(value)) return [textOf(value.content), textOf(value.text)].join(" ");
  return "";
}
