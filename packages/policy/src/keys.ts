import type { BodyFormat } from "./request-kind.js";

/**
 * Runtimes do not all read JSON keys the way the policy engine does. Ollama
 * decodes with Go's encoding/json, which matches field names without regard
 * to case: `{"model": "allowed", "MODEL": "secret"}` is checked here as
 * "allowed" and run there as "secret". So in the objects a runtime maps onto
 * its request fields (the body, `options`, `parameters`, each message, tool
 * call and tool), every key must be lower case, as every field of the
 * OpenAI, Ollama and TGI APIs is. Free-form maps below them (a tool's JSON
 * schema, `logit_bias`, `metadata`) are not fields and keep their keys.
 */

/** Object-valued fields whose keys are data (ids, schema properties), not field names. */
const FREE_FORM = new Set(["logit_bias", "metadata", "chat_template_kwargs", "response_format", "guided_json"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function objectsIn(value: unknown): Record<string, unknown>[] {
  if (isObject(value)) return [value];
  if (Array.isArray(value)) return value.filter(isObject);
  return [];
}

function firstUpperCaseKey(object: Record<string, unknown>, where: string): string | undefined {
  for (const key of Object.keys(object)) {
    if (key !== key.toLowerCase()) return where === "" ? key : `${where}.${key}`;
  }
  return undefined;
}

/**
 * The first key, in the objects that map onto request fields, that is not
 * lower case; undefined when there is none. Such a request is refused.
 */
export function nonCanonicalKey(format: BodyFormat, body: Record<string, unknown>): string | undefined {
  if (format === "none") return undefined;
  const levels: [Record<string, unknown>, string][] = [[body, ""]];
  for (const [key, value] of Object.entries(body)) {
    if (!FREE_FORM.has(key) && isObject(value)) levels.push([value, key]);
  }
  for (const [index, message] of objectsIn(body.messages).entries()) {
    levels.push([message, `messages.${index}`]);
    for (const part of objectsIn(message.content)) levels.push([part, `messages.${index}.content`]);
    for (const call of objectsIn(message.tool_calls)) {
      levels.push([call, `messages.${index}.tool_calls`]);
      for (const fn of objectsIn(call.function)) levels.push([fn, `messages.${index}.tool_calls.function`]);
    }
  }
  for (const tool of objectsIn(body.tools)) {
    levels.push([tool, "tools"]);
    for (const fn of objectsIn(tool.function)) levels.push([fn, "tools.function"]);
  }
  for (const [object, where] of levels) {
    const found = firstUpperCaseKey(object, where);
    if (found !== undefined) return found;
  }
  return undefined;
}
