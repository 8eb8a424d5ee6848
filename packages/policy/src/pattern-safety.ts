import { check, type Diagnostics } from "recheck";
import { type PolicyDefinition, patternError } from "./schema.js";

/** A problem with one part of a definition; `path` like "promptRules.2.pattern". */
export interface PatternIssue {
  path: string;
  message: string;
}

export interface PatternCheckOptions {
  /** Longest analysis of one pattern, in ms (default 2 s). */
  timeoutMs?: number;
  /** Longest analysis of all patterns of one definition together, in ms (default 10 s). */
  budgetMs?: number;
}

const MAX_PATTERNS = 100;
const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_BUDGET_MS = 10_000;

/**
 * Verdicts for patterns seen before, so re-saving a policy does not analyse
 * its rules again. Only definite verdicts are kept (a timeout may pass on a
 * quieter machine); the oldest entry goes first when full.
 */
const verdicts = new Map<string, string | null>();
const MAX_VERDICTS = 1000;

function remember(key: string, verdict: string | null): void {
  if (verdicts.size >= MAX_VERDICTS) {
    const oldest = verdicts.keys().next();
    if (!oldest.done) verdicts.delete(oldest.value);
  }
  verdicts.set(key, verdict);
}

/** Null when the pattern is safe; otherwise why it is refused. */
function verdictOf(diagnostics: Diagnostics): { message: string | null; definite: boolean } {
  switch (diagnostics.status) {
    case "safe":
      return { message: null, definite: true };
    case "vulnerable": {
      const { complexity, attack } = diagnostics;
      const kind = complexity.type === "polynomial" ? `polynomial (degree ${complexity.degree})` : "exponential";
      const example = attack.pattern.length > 120 ? `${attack.pattern.slice(0, 120)}…` : attack.pattern;
      return {
        message: `can take ${kind} time on some prompts (ReDoS), for example on ${example}; avoid nested or adjacent repetitions that can match the same text, such as (a+)+ or \\s*\\s*`,
        definite: true,
      };
    }
    case "unknown": {
      const { error } = diagnostics;
      if (error.kind === "timeout") {
        return {
          message: "its safety could not be established in time; simplify it (large bounded repetitions are costly)",
          definite: false,
        };
      }
      if (error.kind === "unsupported") {
        return { message: `its safety cannot be established: ${error.message}`, definite: true };
      }
      if (error.kind === "invalid") return { message: `does not compile: ${error.message}`, definite: true };
      return { message: "its safety could not be established", definite: false };
    }
  }
}

/**
 * The write-time safety check of prompt-rule patterns. Gateways run every
 * pattern over every prompt, and prompts can be megabytes, so a pattern with
 * super-linear backtracking (exponential like `(a+)+$`, or polynomial like
 * an unanchored `[a-z]+@[a-z]+\.com`) would let one request stall a gateway.
 * Each pattern is analysed with recheck; only a pattern recheck proves safe
 * is accepted, and anything it cannot decide is refused too. Gateways trust
 * this check and do not repeat it.
 */
export async function checkPromptPatterns(
  definition: PolicyDefinition,
  options: PatternCheckOptions = {},
): Promise<PatternIssue[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = performance.now() + (options.budgetMs ?? DEFAULT_BUDGET_MS);
  const issues: PatternIssue[] = [];
  for (const [index, rule] of definition.promptRules.entries()) {
    const path = `promptRules.${index}.pattern`;
    if (index >= MAX_PATTERNS) {
      issues.push({ path, message: `at most ${MAX_PATTERNS} prompt rules are allowed` });
      continue;
    }
    if (!/^[ims]*$/.test(rule.flags) || new Set(rule.flags).size !== rule.flags.length) {
      issues.push({ path: `promptRules.${index}.flags`, message: "only the flags i, m and s are allowed, each once" });
      continue;
    }
    const flags = `${rule.flags}u`;
    const compileError = patternError(rule.pattern, rule.flags);
    if (compileError !== undefined) {
      issues.push({ path, message: `does not compile: ${compileError}` });
      continue;
    }
    const key = `${flags}/${rule.pattern}`;
    const known = verdicts.get(key);
    if (known !== undefined) {
      if (known !== null) issues.push({ path, message: known });
      continue;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      issues.push({
        path,
        message: "not checked: the patterns of this policy took too long to analyse; use fewer or simpler ones",
      });
      continue;
    }
    let verdict: { message: string | null; definite: boolean };
    try {
      verdict = verdictOf(await check(rule.pattern, flags, { timeout: Math.min(timeoutMs, remaining) }));
    } catch {
      // The checker itself failed (its backend could not start): fail closed.
      verdict = { message: "its safety could not be established (the checker failed)", definite: false };
    }
    if (verdict.definite) remember(key, verdict.message);
    if (verdict.message !== null) issues.push({ path, message: verdict.message });
  }
  return issues;
}
