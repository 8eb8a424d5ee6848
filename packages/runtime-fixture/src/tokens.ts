// The fixture's notion of a token is a run of non-whitespace characters. It is
// not what any real tokenizer does, but it is deterministic, easy to predict in
// a test, and makes `max_tokens`/`num_predict` truncation visible.

const TOKEN = /\S+/g;

export function countTokens(text: string): number {
  return text.match(TOKEN)?.length ?? 0;
}

export interface TruncatedText {
  text: string;
  tokens: number;
  /** True when the limit cut the text short (finish reason "length"). */
  truncated: boolean;
}

/** Keeps the first `maxTokens` tokens, with the whitespace between them as written. */
export function truncateToTokens(text: string, maxTokens: number | undefined): TruncatedText {
  const total = countTokens(text);
  if (maxTokens === undefined || maxTokens >= total) return { text, tokens: total, truncated: false };
  if (maxTokens <= 0) return { text: "", tokens: 0, truncated: total > 0 };
  let end = 0;
  let seen = 0;
  for (const match of text.matchAll(TOKEN)) {
    end = match.index + match[0].length;
    seen += 1;
    if (seen === maxTokens) break;
  }
  return { text: text.slice(0, end), tokens: maxTokens, truncated: true };
}

/**
 * Splits text into exactly `count` consecutive pieces of near-equal length
 * (in code points, so no surrogate pair is cut). Joining them gives the text
 * back, which keeps a streamed answer identical to the non-streamed one. The
 * count is kept even when the text is shorter (the extra pieces are empty),
 * because benchmarks rely on the number and timing of chunks.
 */
export function splitIntoChunks(text: string, count: number): string[] {
  const codePoints = Array.from(text);
  const pieces: string[] = [];
  for (let index = 0; index < count; index += 1) {
    const start = Math.floor((index * codePoints.length) / count);
    const end = Math.floor(((index + 1) * codePoints.length) / count);
    pieces.push(codePoints.slice(start, end).join(""));
  }
  return pieces;
}
