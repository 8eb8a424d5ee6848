// The text of one recorded response chunk: what `modelgate sessions replay` prints
// and what the console's replay shows. Pure and dependency-free, so the
// browser bundle imports it as `@modelgate/audit/replay-text`.

/**
 * The printable text of an SSE or NDJSON chunk: what the model wrote, in
 * the shapes the runtimes stream (OpenAI chat and completions deltas, the
 * Responses API's and Anthropic's text deltas, Ollama, TGI tokens); the
 * chunk as it is when none of its lines is a JSON event.
 */
export function textOfChunk(data: string): string {
  let text = "";
  let understood = false;
  for (const rawLine of data.split("\n")) {
    const line = rawLine.trim().replace(/^data:\s*/, "");
    if (line === "[DONE]") {
      understood = true; // OpenAI's end of stream: nothing to print
      continue;
    }
    if (!line.startsWith("{")) continue;
    let value: ChunkShapes;
    try {
      value = JSON.parse(line) as ChunkShapes;
    } catch {
      continue; // a line cut between chunks
    }
    const pieces = [
      ...(value.choices ?? []).map((choice) => choice.delta?.content ?? choice.text),
      value.message?.content,
      value.response,
      typeof value.delta === "string" ? value.delta : value.delta?.text,
      value.token?.special ? undefined : value.token?.text,
    ].filter((piece): piece is string => typeof piece === "string");
    // A JSON event without text (a role, a stop, usage) prints nothing.
    understood = true;
    text += pieces.join("");
  }
  return understood ? text : data;
}

interface ChunkShapes {
  choices?: { delta?: { content?: unknown }; text?: unknown }[];
  message?: { content?: unknown };
  response?: unknown;
  delta?: string | { text?: unknown };
  token?: { text?: unknown; special?: boolean };
}
