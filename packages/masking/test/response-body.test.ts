import { describe, expect, it } from "@jest/globals";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { bodyFormat, createResponseMasker } from "../src/response-masker.js";
import { cutBytes, EMAIL, frameChunks, LABEL, run, WordMasker } from "./response-helpers.js";

const json = (fields: readonly string[]) => ({ contentType: "application/json", fields });

describe("non-streamed JSON", () => {
  // The fixture's chat completion, with numbers whose text a float64 would change.
  const completion = `{"id":"chatcmpl-fixture-1","object":"chat.completion","created":1760000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Mail ${EMAIL}, or ${EMAIL}."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1.0,"total_tokens":12345678901234567891},"note":"${EMAIL}"}`;

  it("masks the configured fields whole, leaves other fields and numbers' text as they were", () => {
    const { body, counts } = run(frameChunks([completion]), json(DEFAULT_FIELDS.openai));
    expect(body).toBe(completion.replace(`Mail ${EMAIL}, or ${EMAIL}.`, `Mail ${LABEL}, or ${LABEL}.`));
    expect(body).toContain('"completion_tokens":1.0,"total_tokens":12345678901234567891');
    expect(JSON.parse(body).note).toBe(EMAIL);
    expect(counts).toEqual({ EMAIL: 2 });
  });

  it("releases nothing before the end, then the whole document", () => {
    const chunks = cutBytes(completion, [10, 200]);
    const { outputs } = run(chunks, json(DEFAULT_FIELDS.openai));
    expect(outputs.slice(0, 3)).toEqual(["", "", ""]);
    expect(JSON.parse(outputs[3] as string).choices[0].message.content).toBe(`Mail ${LABEL}, or ${LABEL}.`);
  });

  it("returns a document with nothing to mask exactly as received, formatting included", () => {
    const pretty = `{\n  "choices": [ { "message": { "content": "nothing here" } } ],\n  "x": 1.50\n}\n`;
    expect(run(frameChunks([pretty]), json(DEFAULT_FIELDS.openai)).body).toBe(pretty);
  });

  it("keeps the whitespace around a rewritten document (Ollama ends bodies with a newline)", () => {
    const body = `{"model":"m","message":{"role":"assistant","content":"${EMAIL}"},"done":true}\n`;
    expect(run(frameChunks([body]), json(DEFAULT_FIELDS.ollama)).body).toBe(body.replace(EMAIL, LABEL));
  });

  it("masks OpenAI tool-call arguments, a JSON string", () => {
    const body = JSON.stringify({
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            tool_calls: [
              { id: "call_1", type: "function", function: { name: "send", arguments: `{"to":"${EMAIL}"}` } },
            ],
          },
        },
      ],
    });
    const parsed = JSON.parse(run(frameChunks([body]), json(DEFAULT_FIELDS.openai)).body);
    expect(parsed.choices[0].message.tool_calls[0].function.arguments).toBe(`{"to":"${LABEL}"}`);
    expect(parsed.choices[0].message.content).toBeNull();
  });

  it("masks the string leaves of an object or array a path selects", () => {
    const body = JSON.stringify({ data: { a: EMAIL, b: [1, EMAIL, { c: EMAIL }], [EMAIL]: true }, other: EMAIL });
    const { body: masked, counts } = run(frameChunks([body]), json(["data"]));
    expect(JSON.parse(masked)).toEqual({
      data: { a: LABEL, b: [1, LABEL, { c: LABEL }], [EMAIL]: true },
      other: EMAIL,
    });
    expect(counts).toEqual({ EMAIL: 3 });
  });

  it("masks TGI's /generate answer", () => {
    const body = JSON.stringify({ generated_text: `reach ${EMAIL}` });
    expect(JSON.parse(run(frameChunks([body]), json(DEFAULT_FIELDS.tgi)).body)).toEqual({
      generated_text: `reach ${LABEL}`,
    });
  });

  it("masks every string when no field is configured (an http connection without paths)", () => {
    const body = JSON.stringify({ results: [{ text: EMAIL, score: 0.5 }], summary: `by ${EMAIL}` });
    expect(JSON.parse(run(frameChunks([body]), json(DEFAULT_FIELDS.http)).body)).toEqual({
      results: [{ text: LABEL, score: 0.5 }],
      summary: `by ${LABEL}`,
    });
    expect(run(frameChunks([JSON.stringify(EMAIL)]), json([])).body).toBe(JSON.stringify(LABEL));
  });

  it("masks a value selected by two overlapping paths once", () => {
    const body = JSON.stringify({ choices: [{ text: EMAIL }] });
    const { counts } = run(frameChunks([body]), json(["choices[*].text", "choices[0].text"]));
    expect(counts).toEqual({ EMAIL: 1 });
  });

  it("passes an empty body", () => {
    expect(run([], json(DEFAULT_FIELDS.openai)).body).toBe("");
  });
});

describe("content types", () => {
  it("reads each content type in its format", () => {
    expect(bodyFormat("text/event-stream; charset=utf-8")).toBe("sse");
    expect(bodyFormat("application/x-ndjson")).toBe("ndjson");
    expect(bodyFormat("Application/JSON; charset=UTF-8")).toBe("json");
    expect(bodyFormat("application/problem+json")).toBe("json");
    expect(bodyFormat("text/plain")).toBe("text");
    expect(bodyFormat("text/html; charset=utf-8")).toBe("text");
    expect(bodyFormat("application/octet-stream")).toBe("binary");
    expect(bodyFormat("image/png")).toBe("binary");
    expect(bodyFormat("")).toBe("binary");
  });

  it("streams text/plain through one channel", () => {
    const { outputs, counts } = run(frameChunks(["Hello, mail jo", "hn@exam", "ple.com now"]), {
      contentType: "text/plain; charset=utf-8",
      fields: DEFAULT_FIELDS.http,
    });
    expect(outputs).toEqual(["Hello, mail ", "", `${LABEL} now`, ""]);
    expect(counts).toEqual({ EMAIL: 1 });
  });

  it("releases held text/plain at the end", () => {
    const { outputs } = run(frameChunks(["see jo"]), { contentType: "text/plain", fields: [] });
    expect(outputs).toEqual(["see ", "jo"]);
  });

  it("passes binary bodies through unchanged, byte for byte", () => {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0x00, ...new TextEncoder().encode(EMAIL), 0xc3]);
    for (const contentType of ["application/octet-stream", "image/jpeg", ""]) {
      const responseMasker = createResponseMasker(new WordMasker(), { contentType, fields: [] });
      expect(responseMasker.push(bytes)).toEqual(bytes);
      expect(responseMasker.end()).toHaveLength(0);
      expect(responseMasker.counts).toEqual({});
    }
  });
});
