import { textOfChunk } from "./replay-text.js";

const sse = (...events: unknown[]) => events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("");

describe("textOfChunk", () => {
  it.each([
    [
      "OpenAI chat",
      sse({ choices: [{ delta: { role: "assistant" } }] }, { choices: [{ delta: { content: "Hi" } }] }),
      "Hi",
    ],
    ["OpenAI completions", sse({ choices: [{ text: "Hello" }] }), "Hello"],
    [
      "Responses API",
      `event: response.output_text.delta\n${sse({ type: "response.output_text.delta", delta: "Bon" })}`,
      "Bon",
    ],
    ["Responses API, an event without text", sse({ type: "response.created", response: { id: "r1" } }), ""],
    ["Anthropic", sse({ type: "content_block_delta", delta: { type: "text_delta", text: "Hey" } }), "Hey"],
    ["Anthropic, the start", sse({ type: "message_start", message: { role: "assistant", content: [] } }), ""],
    ["Ollama chat", '{"message":{"role":"assistant","content":"Guten"},"done":false}\n', "Guten"],
    ["Ollama generate", '{"response":"Tag","done":false}\n', "Tag"],
    ["TGI", sse({ token: { text: "Yes", special: false } }, { token: { text: "</s>", special: true } }), "Yes"],
    ["the end of an OpenAI stream", "data: [DONE]\n\n", ""],
    ["plain text", "just text", "just text"],
  ])("%s", (_label, chunk, expected) => {
    expect(textOfChunk(chunk)).toBe(expected);
  });
});
