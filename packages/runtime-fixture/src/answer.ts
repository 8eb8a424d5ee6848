import { type RequestContext, streamShape } from "./context.js";
import { splitIntoChunks, truncateToTokens } from "./tokens.js";

/** The one answer the fixture gives, cut to the request's token limit. */
export interface Answer {
  readonly text: string;
  /** Completion tokens, counted as whitespace-separated words. */
  readonly tokens: number;
  /** True when the token limit cut the answer short. */
  readonly truncated: boolean;
  /** The text split into this request's number of stream chunks. */
  readonly chunks: readonly string[];
}

export function composeAnswer(context: RequestContext, maxTokens: number | undefined): Answer {
  const { text, tokens, truncated } = truncateToTokens(context.fixture.settings.completionText, maxTokens);
  return { text, tokens, truncated, chunks: splitIntoChunks(text, streamShape(context).chunks) };
}

/** Seconds since the epoch, as OpenAI's `created` fields carry. */
export function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
