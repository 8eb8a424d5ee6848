/**
 * Field paths name the JSON values a masking profile rewrites:
 * `choices[*].delta.content`, `message.content`, `response`,
 * `choices[*].message.tool_calls[*].function.arguments`.
 *
 * The syntax is deliberately tiny (names, `[*]`, `[N]`): the control plane
 * checks paths when a policy is written, and a path that means something
 * surprising (a recursive `..`, a filter expression) would make it hard to
 * see what a profile masks.
 */

/** One step of a path: an object key, any array element, or one array position. */
export type PathSegment =
  | { readonly kind: "key"; readonly name: string }
  | { readonly kind: "any" }
  | { readonly kind: "index"; readonly index: number };

export interface FieldPath {
  /** The path as written. */
  readonly text: string;
  readonly segments: readonly PathSegment[];
}

/** A path that does not follow the syntax; the message says where. */
export class FieldPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FieldPathError";
  }
}

export const MAX_PATH_LENGTH = 256;
/** Dot-separated parts (`choices[*]` is one part), as the policy schema counts them. */
export const MAX_PATH_PARTS = 16;
/** `[N]` takes at most six digits: no response has a million choices. */
const MAX_INDEX_DIGITS = 6;

const NAME = /^[A-Za-z0-9_$-]+/;
const SELECTOR = /^\[(\*|[0-9]+)\]/;

/** Parses a field path; throws FieldPathError on anything outside the syntax. */
export function parseFieldPath(path: string): FieldPath {
  if (path.length === 0) throw new FieldPathError("a field path must not be empty");
  if (path.length > MAX_PATH_LENGTH) {
    throw new FieldPathError(`a field path must be at most ${MAX_PATH_LENGTH} characters`);
  }
  const segments: PathSegment[] = [];
  let rest = path;
  let parts = 0;
  function fail(expected: string): never {
    const at = path.length - rest.length;
    throw new FieldPathError(`field path ${JSON.stringify(path)}: expected ${expected} at character ${at + 1}`);
  }
  for (;;) {
    const name = NAME.exec(rest);
    if (!name) fail("a name (letters, digits, _, $ or -)");
    const matched = name[0];
    segments.push({ kind: "key", name: matched });
    rest = rest.slice(matched.length);
    parts += 1;
    if (parts > MAX_PATH_PARTS) throw new FieldPathError(`a field path must have at most ${MAX_PATH_PARTS} parts`);
    for (let selector = SELECTOR.exec(rest); selector; selector = SELECTOR.exec(rest)) {
      const inside = selector[1] as string;
      if (inside === "*") {
        segments.push({ kind: "any" });
      } else {
        if (inside.length > MAX_INDEX_DIGITS) fail(`an index of at most ${MAX_INDEX_DIGITS} digits`);
        segments.push({ kind: "index", index: Number(inside) });
      }
      rest = rest.slice(selector[0].length);
    }
    if (rest === "") return { text: path, segments };
    if (rest[0] !== ".") fail(`".", "[*]" or "[N]"`);
    rest = rest.slice(1);
  }
}
