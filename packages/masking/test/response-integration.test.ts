// The adapters with the real engine: the values of issue 5's acceptance
// test (an email, a Luhn-valid card and an employee id split across SSE
// events), in each runtime's own format.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { Masker, MaskingError } from "../src/masker.js";
import type { MaskingProfile } from "../src/profile.js";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { createResponseMasker } from "../src/response-masker.js";
import { chatContent, chatStream, cutBytes, frameChunks, run, sseData } from "./response-helpers.js";

const profile = (style: MaskingProfile["style"] = "label"): MaskingProfile => ({
  entities: ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET"],
  custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }],
  denyList: [{ name: "PROJECT", terms: ["Project Falcon"] }],
  style,
  fields: [],
  onError: "block",
  maskPromptsInAudit: false,
});

const CARD = "4111 1111 1111 1111";
const INVALID_CARD = "4111 1111 1111 1112";
const sse = { contentType: "text/event-stream; charset=utf-8", fields: DEFAULT_FIELDS.openai };

/**
 * No piece of output may contain a value the whole text's masking replaces
 * (unless the same characters also stand, undetected, in its result: "EMP-1234567"
 * is no employee id, although it contains one's characters).
 */
function expectNoLeak(masker: Masker, whole: string, outputs: readonly string[]): void {
  const masked = masker.maskText(whole).text;
  const values = masker
    .detect(whole)
    .map((found) => found.value)
    .filter((value) => !masked.includes(value));
  for (const output of outputs) {
    for (const value of values) expect(output).not.toContain(value);
  }
}

describe("with the masking engine", () => {
  const deltas = [
    "Hello! ",
    "Contact jo",
    "hn@ex",
    "ample.com, card 4111 1111 ",
    "1111 1111, employee EMP-12",
    `3456 on Project Fal`,
    `con. Not a card: ${INVALID_CARD}.`,
  ];
  const whole = deltas.join("");

  it("masks an email, a Luhn-valid card and an employee id split across OpenAI SSE events", () => {
    const masker = new Masker(profile());
    const { body, outputs, counts } = run(frameChunks(chatStream(deltas)), sse, masker);
    const content = chatContent(body);
    expect(content).toBe(masker.maskText(whole).text);
    expect(content).toBe(
      `Hello! Contact [EMAIL], card [CREDIT_CARD], employee [EMPLOYEE_ID] on [PROJECT]. Not a card: ${INVALID_CARD}.`,
    );
    expect(counts).toEqual({ EMAIL: 1, CREDIT_CARD: 1, EMPLOYEE_ID: 1, PROJECT: 1 });
    expectNoLeak(masker, whole, outputs);
    expect(body).not.toContain(CARD);
    // Every event is valid JSON, [DONE] last; plain text went out in its own event.
    expect(sseData(body).at(-1)).toBe("[DONE]");
    expect(chatContent(outputs[1] as string)).toBe("Hello! ");
  });

  it("gives the same stream for any byte chunking", () => {
    const masker = new Masker(profile());
    const body = chatStream(deltas).join("");
    const expected = run(frameChunks(chatStream(deltas)), sse, masker).body;
    const length = Buffer.byteLength(body);
    for (let offset = 1; offset < length; offset += 7) {
      expect(run(cutBytes(body, [offset, Math.min(length - 1, offset + 3)]), sse, masker).body).toBe(expected);
    }
  });

  it("masks Ollama NDJSON lines and the done line", () => {
    const masker = new Masker(profile());
    const lines = [...deltas, ""].map(
      (content, index) =>
        `${JSON.stringify({ model: "m", message: { role: "assistant", content }, done: index === deltas.length })}\n`,
    );
    const { body, outputs } = run(
      frameChunks(lines),
      { contentType: "application/x-ndjson", fields: DEFAULT_FIELDS.ollama },
      masker,
    );
    const parsed = body
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { message: { content: string }; done: boolean });
    expect(parsed.map((line) => line.message.content).join("")).toBe(masker.maskText(whole).text);
    expect(parsed.at(-1)?.done).toBe(true);
    expectNoLeak(masker, whole, outputs);
  });

  it("streams TGI tokens and masks generated_text to the same pseudonyms (hash style)", () => {
    const masker = new Masker(profile("hash"), { hashKey: randomBytes(32) });
    const frames = deltas.map((text, index) => {
      const last = index === deltas.length - 1;
      return `data:${JSON.stringify({
        index: index + 1,
        token: { id: index + 1, text, logprob: -0.25, special: false },
        generated_text: last ? whole : null,
        details: last ? { finish_reason: "eos_token", generated_tokens: deltas.length, seed: null } : null,
        top_tokens: null,
      })}\n\n`;
    });
    const { body, counts } = run(
      frameChunks(frames),
      { contentType: "text/event-stream", fields: DEFAULT_FIELDS.tgi },
      masker,
    );
    const events = sseData(body) as { token: { text: string }; generated_text: string | null }[];
    const tokens = events.map((event) => event.token.text).join("");
    expect(tokens).toBe(masker.maskText(whole).text);
    expect(tokens).toMatch(/<EMAIL_[0-9a-f]{8}>/);
    expect(events.at(-1)?.generated_text).toBe(tokens);
    expect(counts).toEqual({ EMAIL: 1, CREDIT_CARD: 1, EMPLOYEE_ID: 1, PROJECT: 1 });
  });

  it("masks a non-streamed chat completion and leaves other fields alone", () => {
    const masker = new Masker(profile());
    const body = `{"id":"chatcmpl-1","created":1.0,"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(whole)}},"finish_reason":"stop"}],"usage":{"total_tokens":12345678901234567891},"system_fingerprint":"john@example.com"}`;
    const { body: masked } = run(
      frameChunks([body]),
      { contentType: "application/json", fields: DEFAULT_FIELDS.openai },
      masker,
    );
    expect(masked).toBe(body.replace(JSON.stringify(whole), JSON.stringify(masker.maskText(whole).text)));
  });

  it("ends the response with a MaskingError when a detector fails", () => {
    const masker = new Masker(profile());
    const failing = {
      maskText: (text: string) => masker.maskText(text),
      createStream: () => {
        const stream = masker.createStream();
        return {
          push(chunk: string) {
            if (chunk.includes("card")) throw new RangeError(`detector broke on ${chunk}`);
            return stream.push(chunk);
          },
          end: () => stream.end(),
          get counts() {
            return stream.counts;
          },
          get held() {
            return stream.held;
          },
        };
      },
    };
    const responseMasker = createResponseMasker(failing, sse);
    const frames = frameChunks(chatStream(deltas));
    expect(responseMasker.push(frames[0] as Uint8Array).length).toBeGreaterThan(0);
    expect(responseMasker.push(frames[1] as Uint8Array).length).toBeGreaterThan(0);
    responseMasker.push(frames[2] as Uint8Array);
    responseMasker.push(frames[3] as Uint8Array);
    expect(() => responseMasker.push(frames[4] as Uint8Array)).toThrow(MaskingError);
    expect(() => responseMasker.end()).toThrow(MaskingError);
  });
});

describe("property: streamed responses equal whole-text masking", () => {
  const pii = fc.constantFrom(
    "john.doe@example.com",
    CARD,
    "4111-1111-1111-1111",
    INVALID_CARD,
    "EMP-123456",
    "EMP-12345",
    "078-05-1120",
    "DE89 3704 0044 0532 0130 00",
    "192.168.0.1",
    "2001:db8::1",
    "+1 415 555 0100",
    "Project Falcon",
    "AKIAIOSFODNN7EXAMPLE",
  );
  const filler = fc.constantFrom(" ", ", ", "\n", "the ", "é", "🙂", "1", "@", "-", "a");
  const text = fc.array(fc.oneof(pii, filler, filler), { maxLength: 25 }).map((parts) => parts.join(""));
  const split = text.chain((whole) =>
    fc.uniqueArray(fc.nat({ max: Math.max(0, whole.length) }), { maxLength: 8 }).map((cuts) => {
      const points = [...new Set([0, ...cuts, whole.length])].sort((a, b) => a - b);
      return points.slice(1).map((end, index) => whole.slice(points[index], end));
    }),
  );

  it("for OpenAI SSE with random deltas and random byte chunks", () => {
    const masker = new Masker(profile());
    fc.assert(
      fc.property(split, fc.array(fc.nat(), { maxLength: 5 }), (contents, rawCuts) => {
        const whole = contents.join("");
        const body = chatStream(contents).join("");
        const length = Buffer.byteLength(body);
        const cuts = [...new Set(rawCuts.map((cut) => cut % length))].filter((cut) => cut > 0).sort((a, b) => a - b);
        const { body: masked, outputs } = run(cutBytes(body, cuts), sse, masker);
        expect(chatContent(masked)).toBe(masker.maskText(whole).text);
        expectNoLeak(masker, whole, outputs);
      }),
      { numRuns: 200 },
    );
  });
});
