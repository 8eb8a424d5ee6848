import type { BodyFormat } from "./request-kind.js";

/** Where a format keeps a generation parameter, and how it is named in reasons. */
interface ParameterLocation {
  name: string;
  path: readonly string[];
}

interface FormatParameters {
  /** Every parameter that bounds the number of generated tokens; each is checked against maxTokens. */
  tokens: readonly ParameterLocation[];
  temperature: ParameterLocation;
  /** Where a cap is written when the request bounds nothing. */
  cap: ParameterLocation;
  /** Ollama: a negative num_predict means "no limit" (-1) or "fill the context" (-2). */
  negativeIsUnlimited: boolean;
}

const at = (...path: string[]): ParameterLocation => ({ name: path.join("."), path });

const OPENAI: FormatParameters = {
  // A runtime honours any of these; checking one would let another through.
  // llama.cpp's server reads its native `n_predict` on the OpenAI routes too,
  // ahead of the others.
  tokens: [at("max_tokens"), at("max_completion_tokens"), at("n_predict")],
  temperature: at("temperature"),
  cap: at("max_tokens"),
  // Ollama's OpenAI layer and llama.cpp read -1 as "no limit".
  negativeIsUnlimited: true,
};

const OLLAMA: FormatParameters = {
  tokens: [at("options", "num_predict")],
  temperature: at("options", "temperature"),
  cap: at("options", "num_predict"),
  negativeIsUnlimited: true,
};

const TGI: FormatParameters = {
  tokens: [at("parameters", "max_new_tokens")],
  temperature: at("parameters", "temperature"),
  cap: at("parameters", "max_new_tokens"),
  negativeIsUnlimited: false,
};

/** Anthropic's `max_tokens` is required and at least 1: no negative "unlimited". */
const ANTHROPIC: FormatParameters = {
  tokens: [at("max_tokens")],
  temperature: at("temperature"),
  cap: at("max_tokens"),
  negativeIsUnlimited: false,
};

/** The Responses API bounds the answer (reasoning included) with max_output_tokens. */
const RESPONSES: FormatParameters = {
  tokens: [at("max_output_tokens")],
  temperature: at("temperature"),
  cap: at("max_output_tokens"),
  negativeIsUnlimited: false,
};

const BY_FORMAT: Partial<Record<BodyFormat, FormatParameters>> = {
  "openai.chat": OPENAI,
  "openai.completions": OPENAI,
  "ollama.generate": OLLAMA,
  "ollama.chat": OLLAMA,
  "tgi.generate": TGI,
  "anthropic.messages": ANTHROPIC,
  "openai.responses": RESPONSES,
};

interface NumericParameter {
  name: string;
  value: number;
  /** The value compared with a cap: Infinity for Ollama's negative "unlimited". */
  compared: number;
}

/** The generation parameters of one request, as the limits see them. */
export interface GenerationParameters {
  /** Token parameters the request sets to a finite number. */
  tokens: NumericParameter[];
  temperature: NumericParameter | undefined;
  /** The first token parameter present but not a finite number, or the non-object it should sit in. */
  invalidTokens: InvalidParameter | undefined;
  invalidTemperature: InvalidParameter | undefined;
  /** Where a token cap goes; undefined for formats without token parameters (embeddings). */
  cap: ParameterLocation | undefined;
  /**
   * How many completions the request asks for (OpenAI `n`, `best_of`): the
   * runtime generates up to this many times the token limit.
   */
  choices: number;
}

interface InvalidParameter {
  name: string;
  expected: "a number" | "an object" | "a whole number from 1 to 128";
}

type Read = { kind: "absent" } | { kind: "number"; value: number } | ({ kind: "invalid" } & InvalidParameter);

/**
 * `null` counts as absent, as runtimes treat it (`"max_tokens": null` is
 * what some client libraries send for "not set"). That is safe: an absent
 * token parameter is capped, and the gateway's edit replaces the null.
 */
function read(body: Record<string, unknown>, location: ParameterLocation): Read {
  let current: unknown = body;
  for (const [index, key] of location.path.entries()) {
    if (current === undefined || current === null) return { kind: "absent" };
    if (typeof current !== "object" || Array.isArray(current)) {
      return { kind: "invalid", name: location.path.slice(0, index).join("."), expected: "an object" };
    }
    current = (current as Record<string, unknown>)[key];
  }
  if (current === undefined || current === null) return { kind: "absent" };
  if (typeof current === "number" && Number.isFinite(current)) return { kind: "number", value: current };
  return { kind: "invalid", name: location.name, expected: "a number" };
}

const NONE: GenerationParameters = {
  tokens: [],
  temperature: undefined,
  invalidTokens: undefined,
  invalidTemperature: undefined,
  cap: undefined,
  choices: 1,
};

/** Most completions one request may ask for; runtimes cap it lower anyway. */
const MAX_CHOICES = 128;

/** OpenAI `n` and `best_of`: the larger, or an invalid parameter. */
function readChoices(body: Record<string, unknown>): number | InvalidParameter {
  let choices = 1;
  for (const name of ["n", "best_of"]) {
    const value = body[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_CHOICES) {
      return { name, expected: "a whole number from 1 to 128" };
    }
    choices = Math.max(choices, value);
  }
  return choices;
}

export function readGenerationParameters(
  format: BodyFormat,
  body: Record<string, unknown> | undefined,
): GenerationParameters {
  const spec = BY_FORMAT[format];
  if (!spec) return NONE;
  const result: GenerationParameters = { ...NONE, tokens: [], cap: spec.cap };
  if (!body) return result;
  for (const location of spec.tokens) {
    const found = read(body, location);
    if (found.kind === "invalid") result.invalidTokens ??= { name: found.name, expected: found.expected };
    else if (found.kind === "number") {
      const unlimited = spec.negativeIsUnlimited && found.value < 0;
      result.tokens.push({
        name: location.name,
        value: found.value,
        compared: unlimited ? Number.POSITIVE_INFINITY : found.value,
      });
    }
  }
  if (spec === OPENAI) {
    const choices = readChoices(body);
    if (typeof choices === "number") result.choices = choices;
    else result.invalidTokens ??= choices;
  }
  const temperature = read(body, spec.temperature);
  if (temperature.kind === "invalid") {
    result.invalidTemperature = { name: temperature.name, expected: temperature.expected };
  } else if (temperature.kind === "number") {
    result.temperature = { name: spec.temperature.name, value: temperature.value, compared: temperature.value };
  }
  return result;
}
