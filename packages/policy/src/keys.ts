import { type BodyPath, fieldShape, isObject, pathText, type Shape, shapeOf } from "./body-shape.js";
import type { BodyFormat } from "./request-kind.js";

/**
 * Runtimes do not all read JSON keys the way the policy engine does. Go's
 * encoding/json (Ollama, and any Go runtime or shim) matches a key to a
 * field name ignoring case, with Unicode's simple case folding:
 * `{"model": "allowed", "MODEL": "secret"}` is checked here as "allowed"
 * and run there as "secret", and "meſſages" (U+017F, long s) or "max_toKens"
 * (U+212A, Kelvin sign) would reach Ollama as `messages` and `max_tokens`
 * while the engine saw unknown fields. Every field of the OpenAI, Ollama and
 * TGI APIs is spelt in lower-case ASCII letters, digits and `_`, so in every
 * object a runtime maps onto its request fields (the body, `options`,
 * `parameters`, messages, content parts, tool calls, tools, response
 * formats, and any object the formats do not describe) every key must be
 * spelt that way. Free-form maps (body-shape.ts: JSON schemas,
 * `logit_bias`, `metadata`, template variables) keep their keys.
 */
const CANONICAL = /^[a-z0-9_]+$/;

/**
 * The path of a key (the first one found), in the objects that map
 * onto request fields, that is not canonical ("options.Num_Predict");
 * undefined when there is none. Such a request is refused. Iterative, so
 * nesting depth costs no stack.
 */
export function nonCanonicalKey(format: BodyFormat, body: Record<string, unknown>): string | undefined {
  if (format === "none") return undefined;
  const stack: { value: unknown; shape: Shape; path: BodyPath | undefined }[] = [
    { value: body, shape: shapeOf(format), path: undefined },
  ];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { value, shape, path } = frame;
    if (shape.free) continue;
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) {
        stack.push({ value: value[index], shape, path: { parent: path, key: index } });
      }
    } else if (isObject(value)) {
      const keys = Object.keys(value);
      for (const key of keys) {
        if (!CANONICAL.test(key)) return pathText({ parent: path, key });
      }
      for (let index = keys.length - 1; index >= 0; index--) {
        const key = keys[index] as string;
        const child = value[key];
        if (typeof child === "object" && child !== null) {
          stack.push({ value: child, shape: fieldShape(shape, key), path: { parent: path, key } });
        }
      }
    }
  }
  return undefined;
}
