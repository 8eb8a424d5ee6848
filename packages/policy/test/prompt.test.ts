import { extractPrompt, normalizePromptText } from "../src/index.js";
import { codePointLength } from "../src/prompt.js";

describe("normalizePromptText", () => {
  it("folds full-width letters with NFKC", () => {
    expect(normalizePromptText("ｅｘｐｏｒｔ ａｌｌ")).toBe("export all");
    expect(normalizePromptText("ﬁle")).toBe("file");
  });

  it("removes zero-width and other invisible characters", () => {
    const hidden = [
      "\u200b",
      "\u200c",
      "\u200d",
      "\u200e",
      "\u200f",
      "\u202a",
      "\u202e",
      "\u2060",
      "\u2064",
      "\u2066",
      "\u2069",
      "\ufeff",
      "\u00ad",
      "\u180e",
      "\u034f",
      "\ufe00",
      "\ufe0f",
      "\u{e0001}",
      "\u{e0041}",
      "\u{e007f}",
    ];
    for (const character of hidden) {
      expect(normalizePromptText(`ex${character}port`)).toBe("export");
    }
  });

  it("composes again characters that were separated by an invisible one", () => {
    expect(normalizePromptText("e\u200b\u0301")).toBe("\u00e9");
  });

  it("leaves ASCII and ordinary text alone", () => {
    expect(normalizePromptText("Hello, world!\n\tTabs stay.")).toBe("Hello, world!\n\tTabs stay.");
    expect(normalizePromptText("Grüße, 東京")).toBe("Grüße, 東京");
  });
});

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
    expect(extractPrompt("openai.chat", body)).toEqual({
      text: 'be brief\npart one\npart two\n{"q":"x"}\nresult',
      nonText: false,
    });
  });

  it("openai.chat: images and malformed messages are not text", () => {
    const image = { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } };
    expect(extractPrompt("openai.chat", { messages: [{ role: "user", content: [image] }] }).nonText).toBe(true);
    expect(extractPrompt("openai.chat", { messages: "hello" }).nonText).toBe(true);
    expect(extractPrompt("openai.chat", { messages: ["hello"] }).nonText).toBe(true);
    expect(extractPrompt("openai.chat", { messages: [{ role: "user", content: 42 }] }).nonText).toBe(true);
    expect(extractPrompt("openai.chat", {})).toEqual({ text: "", nonText: false });
  });

  it("openai.completions: strings and string lists are text, token ids are not", () => {
    expect(extractPrompt("openai.completions", { prompt: "a", suffix: "z" })).toEqual({ text: "a\nz", nonText: false });
    expect(extractPrompt("openai.completions", { prompt: ["a", "b"] })).toEqual({ text: "a\nb", nonText: false });
    expect(extractPrompt("openai.completions", { prompt: [1, 2, 3] }).nonText).toBe(true);
    expect(extractPrompt("openai.completions", { prompt: [[1, 2], [3]] }).nonText).toBe(true);
  });

  it("openai.embeddings reads input the same way", () => {
    expect(extractPrompt("openai.embeddings", { input: ["x", "y"] })).toEqual({ text: "x\ny", nonText: false });
    expect(extractPrompt("openai.embeddings", { input: [101, 102] }).nonText).toBe(true);
  });

  it("ollama.generate: system, prompt and suffix; images and context are not text", () => {
    expect(extractPrompt("ollama.generate", { system: "s", prompt: "p", suffix: "x" })).toEqual({
      text: "s\np\nx",
      nonText: false,
    });
    expect(extractPrompt("ollama.generate", { prompt: "p", images: ["AAAA"] }).nonText).toBe(true);
    expect(extractPrompt("ollama.generate", { prompt: "p", context: [1, 2, 3] }).nonText).toBe(true);
    expect(extractPrompt("ollama.generate", { prompt: "p", images: [], context: [] }).nonText).toBe(false);
  });

  it("ollama.chat: message contents and tool-call arguments; images are not text", () => {
    const body = {
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: { q: "x" } } }] },
      ],
    };
    expect(extractPrompt("ollama.chat", body)).toEqual({ text: 'hi\n\n{"q":"x"}', nonText: false });
    expect(
      extractPrompt("ollama.chat", { messages: [{ role: "user", content: "hi", images: ["AAAA"] }] }).nonText,
    ).toBe(true);
  });

  it("ollama.embed: input (string or list) or the older prompt", () => {
    expect(extractPrompt("ollama.embed", { input: ["a", "b"] })).toEqual({ text: "a\nb", nonText: false });
    expect(extractPrompt("ollama.embed", { prompt: "p" })).toEqual({ text: "p", nonText: false });
  });

  it("tgi.generate reads inputs; none reads nothing", () => {
    expect(extractPrompt("tgi.generate", { inputs: "x", parameters: {} })).toEqual({ text: "x", nonText: false });
    expect(extractPrompt("tgi.generate", { inputs: { a: 1 } }).nonText).toBe(true);
    expect(extractPrompt("none", { prompt: "ignored" })).toEqual({ text: "", nonText: false });
  });
});
