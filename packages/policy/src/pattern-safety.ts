import type { Diagnostics } from "recheck";
import { normalizeRulePattern } from "./rule-pattern.js";
import { type PolicyDefinition, patternError } from "./schema.js";

/** A problem with one part of a definition; `path` like "promptRules.2.pattern". */
export interface PatternIssue {
  path: string;
  message: string;
}

export interface PatternCheckOptions {
  /** Longest analysis of one pattern, in ms (default 5 s). */
  timeoutMs?: number;
  /** Longest analysis of all patterns of one definition together, in ms (default 20 s). */
  budgetMs?: number;
}

const MAX_PATTERNS = 100;
// Generous: the analysis runs once, when a policy is written, and a busy
// control plane must not refuse a safe pattern for lack of time.
const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_BUDGET_MS = 20_000;

/**
 * Verdicts for patterns seen before, so re-saving a policy does not analyse
 * its rules again. Only definite verdicts are kept (a timeout may pass on a
 * quieter machine); the oldest entry goes first when full.
 */
const verdicts = new Map<string, string | null>();
const MAX_VERDICTS = 1000;

/** How long past its own timeout the checker may take to answer before it counts as failed. */
const CHECKER_GRACE_MS = 2000;

/** The checker's answer, or a rejection when it does not answer in time (it runs out of process). */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the pattern checker did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

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
      // Only the automaton checker proves linear time; the fuzz checker
      // (used for lookaround and backreferences) only failed to find an
      // attack, and `a(?!.*b)` takes seconds on a long prompt while it
      // calls that safe.
      if (diagnostics.checker !== "automaton") return { message: LOOKAROUND_MESSAGE, definite: true };
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
 * Whether a pattern uses lookaround or backreferences, read from its source
 * (escapes and character classes skipped). recheck can only fuzz such
 * patterns, not prove them linear, and its fuzzing is time-bound, so they
 * are refused up front: the same answer on a busy machine as on an idle one.
 */
function usesLookaroundOrBackreference(pattern: string): boolean {
  let inClass = false;
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index];
    if (char === "\\") {
      const next = pattern[index + 1] ?? "";
      if (!inClass && (/[1-9]/.test(next) || (next === "k" && pattern[index + 2] === "<"))) return true;
      index++;
    } else if (inClass) {
      if (char === "]") inClass = false;
    } else if (char === "[") {
      inClass = true;
    } else if (char === "(" && pattern[index + 1] === "?") {
      const kind = pattern.slice(index + 2, index + 4);
      if (kind.startsWith("=") || kind.startsWith("!") || kind === "<=" || kind === "<!") return true;
    }
  }
  return false;
}

const LOOKAROUND_MESSAGE =
  "uses lookaround or backreferences, whose running time cannot be proven linear; rewrite it without them";

/** Every pattern of a definition that gateways or agents run over text, with where it sits. */
function patternsOf(definition: PolicyDefinition) {
  return [
    // A rule runs as its literals read in the prompt's normal form: that is the pattern to prove.
    ...definition.promptRules.map((rule, index) => ({
      path: `promptRules.${index}`,
      pattern: normalizeRulePattern(rule.pattern),
      flags: rule.flags,
    })),
    ...(definition.masking?.custom ?? []).map((detector, index) => ({
      path: `masking.custom.${index}`,
      pattern: detector.pattern,
      flags: detector.flags,
    })),
  ];
}

/**
 * recheck is loaded the first time a pattern is checked, not with this
 * package: only the control plane checks patterns (when a policy is
 * written), and loading it cost every gateway about 19 MiB of resident
 * memory it never used (docs/benchmarks.md, issue 16).
 */
let checker: Promise<typeof import("recheck")> | undefined;
function loadChecker(): Promise<typeof import("recheck")> {
  checker ??= import("recheck").catch((error: unknown) => {
    // Not remembered: the next check tries again (this one fails closed).
    checker = undefined;
    throw error;
  });
  return checker;
}

/**
 * The write-time safety check of the patterns in a definition: prompt rules,
 * which gateways run over every prompt, and custom masking detectors, which
 * agents run over every response. Prompts and responses can be megabytes, so
 * a pattern with super-linear backtracking (exponential like `(a+)+$`, or
 * polynomial like an unanchored `[a-z]+@[a-z]+\.com`) would let one request
 * stall a gateway or an agent. Each pattern is analysed with recheck; only a
 * pattern recheck proves safe is accepted, and anything it cannot decide is
 * refused too. Gateways and agents trust this check and do not repeat it.
 */
export async function checkPromptPatterns(
  definition: PolicyDefinition,
  options: PatternCheckOptions = {},
): Promise<PatternIssue[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = performance.now() + (options.budgetMs ?? DEFAULT_BUDGET_MS);
  const issues: PatternIssue[] = [];
  for (const [index, { path: where, pattern, flags: ruleFlags }] of patternsOf(definition).entries()) {
    const path = `${where}.pattern`;
    if (index >= MAX_PATTERNS) {
      issues.push({ path, message: `at most ${MAX_PATTERNS} patterns are allowed in one policy` });
      continue;
    }
    if (!/^[ims]*$/.test(ruleFlags) || new Set(ruleFlags).size !== ruleFlags.length) {
      issues.push({ path: `${where}.flags`, message: "only the flags i, m and s are allowed, each once" });
      continue;
    }
    const flags = `${ruleFlags}u`;
    const compileError = patternError(pattern, ruleFlags);
    if (compileError !== undefined) {
      issues.push({ path, message: `does not compile: ${compileError}` });
      continue;
    }
    if (usesLookaroundOrBackreference(pattern)) {
      issues.push({ path, message: LOOKAROUND_MESSAGE });
      continue;
    }
    const key = `${flags}/${pattern}`;
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
      // Whole milliseconds: the native checker never answers a fractional
      // timeout (it hangs), so the budget's remainder is rounded down.
      const timeout = Math.max(1, Math.floor(Math.min(timeoutMs, remaining)));
      const { check } = await loadChecker();
      verdict = verdictOf(await withDeadline(check(pattern, flags, { timeout }), timeout + CHECKER_GRACE_MS));
    } catch {
      // The checker itself failed (its backend could not start): fail closed.
      verdict = { message: "its safety could not be established (the checker failed)", definite: false };
    }
    if (verdict.definite) remember(key, verdict.message);
    if (verdict.message !== null) issues.push({ path, message: verdict.message });
  }
  return issues;
}
