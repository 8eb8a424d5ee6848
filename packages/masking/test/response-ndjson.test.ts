import { describe, expect, it } from "@jest/globals";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { cutBytes, EMAIL, frameChunks, LABEL, run, WordMasker } from "./response-helpers.js";

const ollama = { contentType: "application/x-ndjson", fields: DEFAULT_FIELDS.ollama };
const MODEL = "llama3.2";
const CREATED_AT = "2025-11-26T03:20:00.000Z";

// As Ollama (and the runtime fixture) writes them: one object per line, the
// last one `done: true` with the statistics.
const FINAL_STATS = {
  done: true,
  done_reason: "stop",
  total_duration: 12345678901,
  load_duration: 0,
  prompt_eval_count: 12,
  prompt_eval_duration: 1.0,
  eval_count: 4,
  eval_duration: 98765,
};

function chatLines(contents: readonly string[]): string[] {
  const line = (content: string, extra: object = { done: false }) =>
    `${JSON.stringify({ model: MODEL, created_at: CREATED_AT, message: { role: "assistant", content }, ...extra })}\n`;
  return [...contents.map((content) => line(content)), line("", FINAL_STATS)];
}

function generateLines(responses: readonly string[]): string[] {
  const line = (response: string, extra: object = { done: false }) =>
    `${JSON.stringify({ model: MODEL, created_at: CREATED_AT, response, ...extra })}\n`;
  return [...responses.map((response) => line(response)), line("", { ...FINAL_STATS, context: [] })];
}

const parseLines = (body: string) =>
  body
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("Ollama /api/chat streams", () => {
  it("masks an email split across lines and releases plain text in its own line", () => {
    const lines = chatLines(["Hello, ", "write to jo", "hn@ex", "ample.com", " please."]);
    const { outputs, body, counts } = run(frameChunks(lines), ollama);
    expect(outputs[0]).toBe(lines[0]);
    const contents = parseLines(body).map((line) => (line.message as { content: string }).content);
    expect(contents).toEqual(["Hello, ", "write to ", "", LABEL, " please.", ""]);
    expect(counts).toEqual({ EMAIL: 1 });
    for (const output of outputs) expect(output).not.toContain("john");
  });

  it("puts held text into the done line, whose statistics keep their exact text", () => {
    const lines = chatLines(["Ask jo"]).map((line) =>
      line.replace('"prompt_eval_duration":1,', '"prompt_eval_duration":1.0,'),
    );
    expect(lines[1]).toContain("1.0");
    const { outputs } = run(frameChunks(lines), ollama);
    expect(outputs[0]).toBe(lines[0]?.replace("Ask jo", "Ask "));
    expect(outputs[1]).toBe(lines[1]?.replace('"content":""', '"content":"jo"'));
    expect(outputs[2]).toBe("");
  });

  it("keeps the numbers' text of a rewritten line", () => {
    const line = `{"model":"m","message":{"role":"assistant","content":"${EMAIL}"},"done":false,"x":1.0,"y":12345678901234567891}\n`;
    expect(run(frameChunks([line]), ollama).body).toBe(line.replace(EMAIL, LABEL));
  });

  it("flushes a channel the done line does not carry in a copy of its last line, before the done line", () => {
    const thinking = (text: string) =>
      `${JSON.stringify({ model: MODEL, created_at: CREATED_AT, message: { role: "assistant", content: "", thinking: text }, done: false })}\n`;
    const lines = [thinking("user named jo"), ...chatLines(["Sure."])];
    const parsed = parseLines(run(frameChunks(lines), ollama).body);
    expect(parsed).toHaveLength(4);
    expect(parsed[0]).toMatchObject({ message: { thinking: "user named " } });
    expect(parsed[1]).toMatchObject({ message: { content: "Sure." } });
    expect(parsed[2]).toEqual({
      model: MODEL,
      created_at: CREATED_AT,
      message: { role: "assistant", content: "", thinking: "jo" },
      done: false,
    });
    expect(parsed[3]).toMatchObject({ done: true });
  });

  it("masks every string inside tool-call arguments, which Ollama sends as an object", () => {
    const line = `${JSON.stringify({
      model: MODEL,
      created_at: CREATED_AT,
      message: {
        role: "assistant",
        content: "",
        tool_calls: [{ function: { name: EMAIL, arguments: { to: EMAIL, cc: [`x ${EMAIL}`], n: 1 } } }],
      },
      done: false,
    })}\n`;
    const { body, counts } = run(frameChunks([line]), ollama);
    const [parsed] = parseLines(body);
    expect(parsed).toMatchObject({
      message: { tool_calls: [{ function: { name: EMAIL, arguments: { to: LABEL, cc: [`x ${LABEL}`], n: 1 } } }] },
    });
    expect(counts).toEqual({ EMAIL: 2 });
  });

  it("cuts lines across chunks, in any place, with the same result", () => {
    const lines = chatLines(["Grüße an jo", "hn@example.com 👋"]);
    const whole = lines.join("");
    const expected = run(frameChunks(lines), ollama).body;
    const length = new TextEncoder().encode(whole).length;
    for (let offset = 1; offset < length; offset += 1) {
      expect(run(cutBytes(whole, [offset]), ollama).body).toBe(expected);
    }
  });

  it("keeps CRLF line endings, blank lines, and a last line without a newline", () => {
    const body = `{"message":{"content":"${EMAIL}"},"done":false}\r\n\r\n{"message":{"content":"x"},"done":true}`;
    expect(run(frameChunks([body]), ollama).body).toBe(body.replace(EMAIL, LABEL));
  });
});

describe("Ollama /api/generate streams", () => {
  it("masks `response` across lines and keeps the done line's context", () => {
    const lines = generateLines(["The address is john@", "example.com and jo"]);
    const { body } = run(frameChunks(lines), ollama);
    const parsed = parseLines(body);
    expect(parsed.map((line) => line.response).join("")).toBe(
      new WordMasker().maskText("The address is john@example.com and jo").text,
    );
    expect(parsed[2]).toMatchObject({ response: "jo", done: true, context: [] });
  });

  it("masks top-level thinking", () => {
    const line = `${JSON.stringify({ model: MODEL, thinking: EMAIL, response: "", done: false })}\n`;
    expect(parseLines(run(frameChunks([line]), ollama).body)[0]).toMatchObject({ thinking: LABEL });
  });
});
