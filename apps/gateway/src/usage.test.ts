import { extractUsage } from "./usage.js";

describe("extractUsage", () => {
  it("reads OpenAI usage from a whole answer and from the last event of a stream", () => {
    expect(
      extractUsage("application/json", '{"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}'),
    ).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    const sse = [
      'data: {"choices":[{"delta":{"content":"a"}}]}',
      'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}',
      "data: [DONE]",
      "",
    ].join("\n\n");
    expect(extractUsage("text/event-stream", sse)).toEqual({ prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });
  });

  it("reads Ollama's counts and TGI's generated tokens", () => {
    const ndjson = '{"response":"a","done":false}\n{"done":true,"prompt_eval_count":4,"eval_count":6}\n';
    expect(extractUsage("application/x-ndjson", ndjson)).toEqual({
      prompt_tokens: 4,
      completion_tokens: 6,
      total_tokens: 10,
    });
    expect(extractUsage("application/json", '[{"generated_text":"x","details":{"generated_tokens":7}}]')).toEqual({
      completion_tokens: 7,
    });
  });

  it("answers nothing for answers without usage, broken JSON or negative counts", () => {
    expect(extractUsage("application/json", '{"choices":[]}')).toBeUndefined();
    expect(extractUsage("application/json", "{not json")).toBeUndefined();
    expect(extractUsage("application/json", '{"usage":{"prompt_tokens":-1}}')).toBeUndefined();
    expect(extractUsage("text/plain", "usage")).toBeUndefined();
  });

  it("finds usage behind events and lines without it, only in the last eight", () => {
    const chunk = (content: string) => `data: {"choices":[{"delta":{"content":"${content}"}}]}\n\n`;
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":9,"total_tokens":11}}\n\n';
    const tail = (count: number) => Array.from({ length: count }, (_, index) => chunk(`late ${index}`)).join("");
    expect(extractUsage("text/event-stream", `${chunk("a")}${usage}${tail(6)}data: [DONE]\n\n`)).toEqual({
      prompt_tokens: 2,
      completion_tokens: 9,
      total_tokens: 11,
    });
    expect(extractUsage("text/event-stream", `${chunk("a")}${usage}${tail(8)}`)).toBeUndefined();
    // The word in an answer's text is not a usage report, in a stream or a whole answer.
    expect(extractUsage("text/event-stream", `${chunk('the \\"usage\\" of words')}`)).toBeUndefined();
    expect(
      extractUsage("application/json", '{"choices":[{"message":{"content":"usage: eval_count"}}]}'),
    ).toBeUndefined();
    const ndjson = '{"done":true,"prompt_eval_count":4}\n{"response":"","done":true}\n';
    expect(extractUsage("application/x-ndjson", ndjson)).toEqual({ prompt_tokens: 4 });
  });

  it("survives an answer nested far deeper than the stack (a runtime's or agent's doing)", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    expect(extractUsage("application/json", deep)).toBeUndefined();
    expect(extractUsage("application/json", '[[{"details":{"generated_tokens":1}}]]')).toBeUndefined();
  });
});

describe("extractUsage: Anthropic's Messages API", () => {
  it("reads input and output tokens, prompt-cache tokens counted as prompt", () => {
    expect(extractUsage("application/json", '{"type":"message","usage":{"input_tokens":4,"output_tokens":6}}')).toEqual(
      {
        prompt_tokens: 4,
        completion_tokens: 6,
        total_tokens: 10,
      },
    );
    const cached =
      '{"usage":{"input_tokens":4,"cache_read_input_tokens":10,"cache_creation_input_tokens":2,"output_tokens":1}}';
    expect(extractUsage("application/json", cached)).toEqual({
      prompt_tokens: 16,
      completion_tokens: 1,
      total_tokens: 17,
    });
  });

  it("takes a stream's prompt tokens from message_start and its answer tokens from message_delta", () => {
    const event = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    const stream = [
      event("message_start", { type: "message_start", message: { usage: { input_tokens: 9, output_tokens: 1 } } }),
      event("content_block_start", { type: "content_block_start", index: 0 }),
      ...Array.from({ length: 12 }, () => event("content_block_delta", { type: "content_block_delta", delta: {} })),
      event("content_block_stop", { type: "content_block_stop", index: 0 }),
      event("message_delta", { type: "message_delta", usage: { output_tokens: 12 } }),
      event("message_stop", { type: "message_stop" }),
    ].join("");
    expect(extractUsage("text/event-stream", stream)).toEqual({
      prompt_tokens: 9,
      completion_tokens: 12,
      total_tokens: 21,
    });
  });
});
