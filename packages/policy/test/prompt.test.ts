import { extractPrompt } from "../src/index.js";
import { codePointLength } from "../src/prompt.js";

/** Text and non-text verdict, as most cases compare them. */
const read = (...args: Parameters<typeof extractPrompt>) => {
  const { text, nonText } = extractPrompt(...args);
  return { text, nonText };
};

describe("codePointLength", () => {
  it("counts code points, not UTF-16 units", () => {
    expect(codePointLength("abc")).toBe(3);
    expect(codePointLength("😀😀")).toBe(2);
    expect(codePointLength("a\ud800b")).toBe(3);
    expect(codePointLength("")).toBe(0);
  });
});

describe("extractPrompt", () => {
  it("openai.chat: string and text-part content, and tool-call arguments", () => {
    const body = {
      messages: [
        { role: "system", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "part one" },
            { type: "text", text: "part two" },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "1", type: "function", function: { name: "f", arguments: '{"q":"x"}' } }],
        },
        { role: "tool", tool_call_id: "1", content: "result" },
      ],
    };
    // Ids are read too: some chat templates render them (Mistral's tool call ids).
    expect(read("openai.chat", body)).toEqual({
      text: 'be brief\npart one\npart two\n1\nf\n{"q":"x"}\n1\nresult',
      nonText: false,
    });
  });

  it("openai.chat: images and malformed messages are not text", () => {
    const image = { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } };
    expect(read("openai.chat", { messages: [{ role: "user", content: [image] }] }).nonText).toBe(true);
    expect(read("openai.chat", { messages: "hello" }).nonText).toBe(true);
    expect(read("openai.chat", { messages: ["hello"] }).nonText).toBe(true);
    expect(read("openai.chat", { messages: [{ role: "user", content: 42 }] }).nonText).toBe(true);
    expect(read("openai.chat", {})).toEqual({ text: "", nonText: false });
  });

  it("openai.completions: strings and string lists are text, token ids are not", () => {
    expect(read("openai.completions", { prompt: "a", suffix: "z" })).toEqual({ text: "a\nz", nonText: false });
    expect(read("openai.completions", { prompt: ["a", "b"] })).toEqual({ text: "a\nb", nonText: false });
    expect(read("openai.completions", { prompt: [1, 2, 3] }).nonText).toBe(true);
    expect(read("openai.completions", { prompt: [[1, 2], [3]] }).nonText).toBe(true);
  });

  it("openai.embeddings reads input the same way", () => {
    expect(read("openai.embeddings", { input: ["x", "y"] })).toEqual({ text: "x\ny", nonText: false });
    expect(read("openai.embeddings", { input: [101, 102] }).nonText).toBe(true);
  });

  it("ollama.generate: system, prompt and suffix; images and context are not text", () => {
    expect(read("ollama.generate", { system: "s", prompt: "p", suffix: "x" })).toEqual({
      text: "s\np\nx",
      nonText: false,
    });
    expect(read("ollama.generate", { prompt: "p", images: ["AAAA"] }).nonText).toBe(true);
    expect(read("ollama.generate", { prompt: "p", context: [1, 2, 3] }).nonText).toBe(true);
    expect(read("ollama.generate", { prompt: "p", images: [], context: [] }).nonText).toBe(false);
  });

  it("ollama.chat: message contents and tool-call arguments; images are not text", () => {
    const body = {
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: { q: "x" } } }] },
      ],
    };
    // Object arguments are a free-form map: parameter names and values are read.
    expect(read("ollama.chat", body)).toEqual({ text: "hi\n\nf\nq\nx", nonText: false });
    expect(
      extractPrompt("ollama.chat", { messages: [{ role: "user", content: "hi", images: ["AAAA"] }] }).nonText,
    ).toBe(true);
  });

  it("ollama.embed: input (string or list) or the older prompt", () => {
    expect(read("ollama.embed", { input: ["a", "b"] })).toEqual({ text: "a\nb", nonText: false });
    expect(read("ollama.embed", { prompt: "p" })).toEqual({ text: "p", nonText: false });
  });

  it("tgi.generate reads inputs; none reads nothing", () => {
    expect(read("tgi.generate", { inputs: "x", parameters: {} })).toEqual({ text: "x", nonText: false });
    expect(read("tgi.generate", { inputs: { a: 1 } }).nonText).toBe(true);
    expect(read("none", { prompt: "ignored" })).toEqual({ text: "", nonText: false });
  });
});

describe("extractPrompt: anthropic.messages", () => {
  it("reads the system prompt, every message's text, tool calls, tool results and tools, not the fixed words", () => {
    const body = {
      model: "claude-like",
      max_tokens: 64,
      system: [{ type: "text", text: "be brief", cache_control: { type: "ephemeral" } }],
      stop_sequences: ["END"],
      metadata: { user_id: "user-42" },
      messages: [
        { role: "user", content: "plain question" },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "let me look", signature: "c2lnbmF0dXJl" },
            { type: "tool_use", id: "toolu_1", name: "lookup", input: { query: "the files" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "found it" }] },
            { type: "text", text: "and now?" },
          ],
        },
      ],
      tools: [
        {
          name: "lookup",
          description: "looks things up",
          input_schema: { type: "object", properties: { query: { type: "string" } } },
        },
      ],
      tool_choice: { type: "auto" },
    };
    const prompt = extractPrompt("anthropic.messages", body);
    expect(prompt.nonText).toBe(false);
    expect(prompt.pieces).toEqual([
      "be brief",
      "plain question",
      "let me look",
      "toolu_1",
      "lookup",
      "query",
      "the files",
      "toolu_1",
      "found it",
      "and now?",
      "lookup",
      "looks things up",
      "type",
      "object",
      "properties",
      "query",
      "type",
      "string",
    ]);
    expect(prompt.fieldOf(1)).toBe("messages.0.content");
    expect(prompt.fieldOf(8)).toBe("messages.2.content.0.content.0.text");
  });

  it.each([
    [
      "an image block",
      { messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", data: "AAAA" } }] }] },
    ],
    [
      "a document",
      { messages: [{ role: "user", content: [{ type: "document", source: { type: "url", url: "http://x" } }] }] },
    ],
    [
      "an image in a tool result",
      {
        messages: [
          {
            role: "user",
            content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "image", source: {} }] }],
          },
        ],
      },
    ],
    ["redacted thinking", { messages: [{ role: "assistant", content: [{ type: "redacted_thinking", data: "enc" }] }] }],
    ["a system prompt that is not text", { system: [{ type: "image" }], messages: [] }],
    ["content that is a number", { messages: [{ role: "user", content: 42 }] }],
  ])("holds input rules cannot read: %s", (_name, body) => {
    expect(extractPrompt("anthropic.messages", body).nonText).toBe(true);
  });
});

describe("extractPrompt: openai.responses", () => {
  it("reads the instructions, the input's texts, tool calls and outputs, and the tools", () => {
    const body = {
      model: "m",
      instructions: "be brief",
      include: ["reasoning.encrypted_content"],
      input: [
        { role: "user", content: [{ type: "input_text", text: "first question" }] },
        { type: "function_call", call_id: "c1", name: "lookup", arguments: '{"q":"files"}' },
        { type: "function_call_output", call_id: "c1", output: "found it" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "an answer" }] },
      ],
      tools: [{ type: "function", name: "lookup", description: "looks up", parameters: { type: "object" } }],
      text: { format: { type: "json_schema", name: "out", schema: { properties: { a: {} } } } },
      reasoning: { effort: "low" },
    };
    const prompt = extractPrompt("openai.responses", body);
    expect(prompt.nonText).toBe(false);
    expect(prompt.pieces).toEqual([
      "be brief",
      "first question",
      "c1",
      "lookup",
      '{"q":"files"}',
      "c1",
      "found it",
      "an answer",
      "lookup",
      "looks up",
      "type",
      "object",
      "out",
      "properties",
      "a",
    ]);
    expect(prompt.fieldOf(1)).toBe("input.0.content.0.text");
    expect(read("openai.responses", { input: "just text" })).toEqual({ text: "just text", nonText: false });
  });

  it.each([
    ["an image", { input: [{ role: "user", content: [{ type: "input_image", image_url: "data:," }] }] }],
    ["a file", { input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }],
    ["a stored item", { input: [{ type: "item_reference", id: "msg_1" }] }],
    ["an earlier response", { input: "more", previous_response_id: "resp_1" }],
    ["a stored conversation", { input: "more", conversation: "conv_1" }],
    ["a prompt template", { input: "more", prompt: { id: "pmpt_1" } }],
    ["encrypted reasoning", { input: [{ type: "reasoning", summary: [], encrypted_content: "enc" }] }],
    ["token ids", { input: [1, 2, 3] }],
  ])("holds input rules cannot read: %s", (_name, body) => {
    expect(extractPrompt("openai.responses", body).nonText).toBe(true);
  });
});

describe("extractPrompt: vllm.score and vllm.tokenize", () => {
  it("reads a rerank's query and documents, plain or as {text}, and a score's text pairs", () => {
    expect(read("vllm.score", { model: "m", query: "q", documents: ["a", { text: "b" }], top_n: 2 })).toEqual({
      text: "q\na\nb",
      nonText: false,
    });
    expect(read("vllm.score", { model: "m", text_1: "x", text_2: ["y", "z"] })).toEqual({
      text: "x\ny\nz",
      nonText: false,
    });
    expect(extractPrompt("vllm.score", { query: "q", documents: [{ content: [{ type: "image_url" }] }] }).nonText).toBe(
      true,
    );
    expect(extractPrompt("vllm.score", { text_1: [1, 2], text_2: "y" }).nonText).toBe(true);
  });

  it("reads tokenize's prompt or messages; detokenize's token ids are not text", () => {
    expect(read("vllm.tokenize", { model: "m", prompt: "count me" })).toEqual({ text: "count me", nonText: false });
    expect(read("vllm.tokenize", { messages: [{ role: "user", content: "hi" }] })).toEqual({
      text: "hi",
      nonText: false,
    });
    expect(extractPrompt("vllm.tokenize", { tokens: [1, 2] }).nonText).toBe(true);
    expect(extractPrompt("vllm.tokenize", { prompt: [1, 2] }).nonText).toBe(true);
  });
});
