/**
 * Model patterns: `*` matches any run of characters (including none and
 * including `/` and `:`), everything else matches itself, case-sensitively.
 *
 * Matched without regular expressions: a backtracking regex for a pattern
 * with many stars is polynomial in the length of the model name, and the
 * model name comes from the caller. Finding each fixed piece at its leftmost
 * position is exact for star-only globs and linear per piece.
 */
export type ModelMatcher = (model: string) => boolean;

const MATCH_ALL: ModelMatcher = () => true;

function compileGlob(pattern: string): ModelMatcher {
  const pieces = pattern.split("*");
  if (pieces.length === 1) return (model) => model === pattern;
  if (pieces.every((piece) => piece === "")) return MATCH_ALL;
  const prefix = pieces[0] ?? "";
  const suffix = pieces[pieces.length - 1] ?? "";
  const middle = pieces.slice(1, -1).filter((piece) => piece !== "");
  const fixedLength = prefix.length + suffix.length;
  return (model) => {
    if (model.length < fixedLength || !model.startsWith(prefix) || !model.endsWith(suffix)) return false;
    let position = prefix.length;
    const end = model.length - suffix.length;
    for (const piece of middle) {
      const found = model.indexOf(piece, position);
      if (found === -1 || found + piece.length > end) return false;
      position = found + piece.length;
    }
    return true;
  };
}

/** One matcher for a resource's list of patterns. */
export function compileModelPatterns(patterns: readonly string[]): ModelMatcher {
  if (patterns.some((pattern) => /^\*+$/.test(pattern))) return MATCH_ALL;
  const exact = new Set(patterns.filter((pattern) => !pattern.includes("*")));
  const globs = patterns.filter((pattern) => pattern.includes("*")).map(compileGlob);
  if (globs.length === 0) return (model) => exact.has(model);
  return (model) => exact.has(model) || globs.some((glob) => glob(model));
}
