// answerSearchText: a streamed answer's text, assembled from its events in
// the shapes the runtimes modelgate fronts stream, for the listing's `q`.
import { answerSearchText } from "../src/search-text.js";

const sse = (...events: unknown[]) => events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("");
const ndjson = (...lines: unknown[]) => lines.map((line) => `${JSON.stringify(line)}\n`).join("");

describe("answerSearchText", () => {
  it.each([
    [
      "OpenAI chat deltas, a word split across chunks, then [DONE]",
      "text/event-stream; charset=utf-8",
      `${sse(
        {
          id: "c1",
          object: "chat.completion.chunk",
          model: "m",
          choices: [{ index: 0, delta: { role: "assistant" } }],
        },
        { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "The quar" } }] },
        { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "terly report" } }] },
        { id: "c1", choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 3 } },
      )}data: [DONE]\n\n`,
      "The quarterly report",
    ],
    [
      "OpenAI completions, CRLF line ends and SSE comments",
      "text/event-stream",
      ': keep-alive\r\n\r\ndata: {"choices":[{"text":"Hello"}]}\r\n\r\ndata: {"choices":[{"text":", world"}]}\r\n\r\n',
      "Hello, world",
    ],
    [
      "tool calls' arguments and a refusal",
      "text/event-stream",
      sse(
        { choices: [{ delta: { tool_calls: [{ index: 0, function: { name: "lookup", arguments: '{"city":' } }] } }] },
        { choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] } }] },
        { choices: [{ delta: { refusal: " I cannot" } }] },
      ),
      'lookup{"city":"Oslo"} I cannot',
    ],
    [
      "vLLM reasoning before the answer",
      "text/event-stream",
      sse({ choices: [{ delta: { reasoning_content: "Think. " } }] }, { choices: [{ delta: { content: "Answer." } }] }),
      "Think. Answer.",
    ],
    [
      "the Responses API's text deltas",
      "text/event-stream",
      `event: response.output_text.delta\n${sse(
        { type: "response.output_text.delta", item_id: "msg_1", delta: "Bon" },
        { type: "response.output_text.delta", item_id: "msg_1", delta: "jour" },
      )}`,
      "Bonjour",
    ],
    [
      "Anthropic Messages events",
      "text/event-stream",
      sse(
        { type: "message_start", message: { id: "msg_1", role: "assistant", content: [], model: "claude" } },
        { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi " } },
        { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "there" } },
        { type: "message_stop" },
      ),
      "Hi there",
    ],
    [
      "TGI tokens and its generated text",
      "text/event-stream",
      sse({ token: { id: 1, text: "Yes", special: false } }, { token: { id: 2, text: "!" }, generated_text: "Yes!" }),
      "Yes!Yes!",
    ],
    [
      "Ollama chat NDJSON",
      "application/x-ndjson",
      ndjson(
        { model: "llama3", message: { role: "assistant", content: "Gute" }, done: false },
        { model: "llama3", message: { role: "assistant", content: "n Tag" }, done: true, eval_count: 2 },
      ),
      "Guten Tag",
    ],
    [
      "Ollama generate NDJSON with thinking",
      "application/x-ndjson; charset=utf-8",
      ndjson({ response: "", thinking: "hmm " }, { response: "ok", done: true }),
      "hmm ok",
    ],
  ])("%s", (_label, contentType, body, expected) => {
    expect(answerSearchText(contentType, body)).toBe(expected);
  });

  it.each([
    ["a JSON answer (searched by its body)", "application/json", '{"choices":[{"message":{"content":"Hi"}}]}'],
    ["text", "text/plain", "Hi"],
    ["no content type", undefined, 'data: {"choices":[{"text":"Hi"}]}\n\n'],
    [
      "a stream of nothing but wrapping",
      "text/event-stream",
      `${sse({ id: "c1", choices: [{ delta: { role: "assistant" } }] })}`,
    ],
    ["an empty body", "text/event-stream", ""],
  ])("is null for %s: the body is searched instead", (_label, contentType, body) => {
    expect(answerSearchText(contentType, body)).toBeNull();
  });

  it("is null without a body", () => {
    expect(answerSearchText("text/event-stream", null)).toBeNull();
  });

  it("keeps a line the body's cap cut, as text", () => {
    const whole = sse({ choices: [{ delta: { content: "kept" } }] }, { choices: [{ delta: { content: "cut" } }] });
    expect(answerSearchText("text/event-stream", whole.slice(0, -12))).toBe('kept{"choices":[{"delta":{"content"');
  });

  it("hides nothing a runtime sends: other keys, plain data, multi-line events, unknown lines, errors", () => {
    const body = [
      sse({ choices: [{ delta: { content: "hello " } }], custom: "EXFIL-TOKEN-123" }),
      "data: plain text, not JSON\n\n",
      'data: {"choices":[{"delta":\ndata: {"content":"split over lines"}}]}\n\n',
      sse({ error: { message: "quota exhausted", code: 429 } }),
      "whatever: is not SSE\n\n",
      "event: ping\nid: 7\nretry: 100\n: comment\n\n",
    ].join("");
    expect(answerSearchText("text/event-stream", body)).toBe(
      "hello EXFIL-TOKEN-123plain text, not JSONsplit over linesquota exhaustedwhatever: is not SSE",
    );
  });

  it("stores what Postgres text cannot hold, U+0000 and lone surrogates, as U+FFFD", () => {
    const body = 'data: {"choices":[{"delta":{"content":"a\\u0000b\\ud800c"}}]}\n\n';
    expect(answerSearchText("text/event-stream", body)).toBe("a\uFFFDb\uFFFDc");
  });

  it("does not parse what nests too deeply or is too large; keeps it as text", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const shallow = `{"a":${'{"a":'.repeat(5)}{"content":"found"}${"}".repeat(5)}}`;
    const tooDeep = `{"a":${'{"a":'.repeat(40)}{"content":"kept"}${"}".repeat(40)}}`;
    const large = JSON.stringify({ content: "x".repeat(300_000) });
    const text = answerSearchText("application/x-ndjson", `${deep}\n${shallow}\n${tooDeep}\n${large}\n`) as string;
    expect(text.startsWith(deep)).toBe(true);
    expect(text).toContain(`found${tooDeep}`);
    expect(text.endsWith(large)).toBe(true);
    // Brackets inside strings do not count as nesting.
    expect(answerSearchText("application/x-ndjson", JSON.stringify({ content: "[".repeat(100) }))).toBe(
      "[".repeat(100),
    );
  });

  it("assembles a long stream in order, at a fraction of its size", () => {
    const chunks = Array.from({ length: 20_000 }, (_, index) => ({ choices: [{ delta: { content: `w${index} ` } }] }));
    const body = sse(...chunks);
    const text = answerSearchText("text/event-stream", body) as string;
    expect(text.startsWith("w0 w1 w2 ")).toBe(true);
    expect(text.endsWith("w19999 ")).toBe(true);
    expect(text.length).toBeLessThan(body.length / 5);
  });
});
