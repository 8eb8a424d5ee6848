import type { CompiledPolicy } from "./compile.js";
import type { GenerationParameters } from "./parameters.js";
import { quote } from "./text.js";

/** One way a request breaks one grant's limits. */
export interface LimitFailure {
  param: string;
  /** `above` a maximum or `below` a minimum. */
  direction: "above" | "below";
  value: number;
  limit: number;
  policy: CompiledPolicy;
  /** Sort key: where the parameter comes in the checks (tokens, temperature, prompt). */
  order: number;
  /** Completions asked for (OpenAI `n`), when more than one multiplies the tokens. */
  choices?: number;
}

/** Every limit of `policy` the request breaks; empty when the grant allows it. */
export function limitFailures(
  policy: CompiledPolicy,
  parameters: GenerationParameters,
  promptChars: number,
): LimitFailure[] {
  const failures: LimitFailure[] = [];
  const { maxTokens, temperature, maxPromptChars } = policy.limits;
  if (maxTokens !== undefined) {
    // maxTokens bounds what the request may generate in all: n completions
    // of max_tokens each count n times.
    const choices = parameters.choices;
    for (const [order, token] of parameters.tokens.entries()) {
      if (token.compared * choices > maxTokens) {
        failures.push({
          param: token.name,
          direction: "above",
          value: token.value,
          limit: maxTokens,
          policy,
          order,
          choices,
        });
      }
    }
    if (parameters.tokens.length === 0 && choices > maxTokens) {
      failures.push({ param: "n", direction: "above", value: choices, limit: maxTokens, policy, order: 0 });
    }
  }
  const requested = parameters.temperature;
  if (temperature && requested) {
    const order = parameters.tokens.length + 10;
    if (temperature.max !== undefined && requested.value > temperature.max) {
      failures.push({
        param: requested.name,
        direction: "above",
        value: requested.value,
        limit: temperature.max,
        policy,
        order,
      });
    }
    if (temperature.min !== undefined && requested.value < temperature.min) {
      failures.push({
        param: requested.name,
        direction: "below",
        value: requested.value,
        limit: temperature.min,
        policy,
        order,
      });
    }
  }
  if (maxPromptChars !== undefined && promptChars > maxPromptChars) {
    failures.push({
      param: "prompt",
      direction: "above",
      value: promptChars,
      limit: maxPromptChars,
      policy,
      order: 100,
    });
  }
  return failures;
}

function describe(failure: LimitFailure): string {
  const policy = `policy ${quote(failure.policy.name)}`;
  if (failure.param === "prompt") {
    return `prompt of ${failure.value} characters exceeds the limit ${failure.limit} of ${policy}`;
  }
  if (failure.direction === "below") {
    return `${failure.param} ${failure.value} is below the minimum ${failure.limit} of ${policy}`;
  }
  // A negative token limit is "no limit", which no cap allows.
  const value = failure.value < 0 ? `${failure.value} (unlimited)` : String(failure.value);
  if (failure.choices !== undefined && failure.choices > 1 && failure.value >= 0) {
    return `${failure.param} ${value} for each of ${failure.choices} completions (n) exceeds the limit ${failure.limit} of ${policy}`;
  }
  const bound = failure.param.endsWith("temperature") ? "maximum" : "limit";
  return `${failure.param} ${value} exceeds the ${bound} ${failure.limit} of ${policy}`;
}

/**
 * Why no grant allows the request: for each parameter and direction, the
 * most permissive grant that still refuses it (the highest maximum, the
 * lowest minimum), in the order the parameters are checked. When each grant
 * refuses a different parameter, each gets its sentence, so the caller sees
 * that no single policy allows the combination.
 */
export function explainLimitFailures(failures: readonly LimitFailure[]): { param: string; reasons: string[] } {
  const strongest = new Map<string, LimitFailure>();
  for (const failure of failures) {
    const key = `${failure.direction} ${failure.param}`;
    const current = strongest.get(key);
    const better =
      current === undefined ||
      (failure.direction === "above" ? failure.limit > current.limit : failure.limit < current.limit);
    if (better) strongest.set(key, failure);
  }
  const ordered = [...strongest.values()].sort((a, b) => a.order - b.order);
  return { param: ordered[0]?.param ?? "", reasons: ordered.map(describe) };
}
