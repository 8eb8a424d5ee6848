import { describe, expect, it } from "@jest/globals";
import { MaskingError, type MaskingStream } from "../src/masker.js";
import { MAX_EVENT_BYTES } from "../src/response-adapters.js";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { createResponseMasker, type ResponseMasker } from "../src/response-masker.js";
import { chatChunk, deltaChoice, EMAIL, LABEL, WordMasker } from "./response-helpers.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sse = { contentType: "text/event-stream", fields: DEFAULT_FIELDS.openai };
const push = (responseMasker: ResponseMasker, text: string) =>
  decoder.decode(responseMasker.push(encoder.encode(text)));

/** Fails the same way from then on, and says nothing of the response's text. */
function expectFailure(call: () => unknown, message: RegExp): MaskingError {
  let caught: unknown;
  try {
    call();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MaskingError);
  const error = caught as MaskingError;
  expect(error.message).toMatch(message);
  expect(error.message).not.toContain("john");
  return error;
}

describe("fail closed", () => {
  it("refuses an event that is not JSON, and everything after it", () => {
    const responseMasker = createResponseMasker(new WordMasker(), sse);
    expect(push(responseMasker, chatChunk([deltaChoice({ content: "fine" })]))).toContain("fine");
    // The good event in the same chunk is not released either.
    const bad = `${chatChunk([deltaChoice({ content: "also fine" })])}data: {"content":"${EMAIL}"\n\n`;
    expectFailure(() => push(responseMasker, bad), /not valid JSON/);
    expectFailure(() => push(responseMasker, chatChunk([deltaChoice({ content: "later" })])), /already failed/);
    expectFailure(() => responseMasker.end(), /already failed/);
  });

  it("refuses data that is neither JSON nor [DONE]", () => {
    const responseMasker = createResponseMasker(new WordMasker(), sse);
    expectFailure(() => push(responseMasker, `data: ${EMAIL}\n\n`), /not valid JSON/);
  });

  it("masks an event the stream ended inside of, and refuses one that is cut short", () => {
    const complete = createResponseMasker(new WordMasker(), sse);
    const unterminated = chatChunk([deltaChoice({ content: EMAIL })]).trimEnd();
    expect(push(complete, unterminated)).toBe("");
    expect(decoder.decode(complete.end())).toBe(`${unterminated.replace(EMAIL, LABEL)}\n\n`);

    const cut = createResponseMasker(new WordMasker(), sse);
    push(cut, unterminated.slice(0, -10));
    expectFailure(() => cut.end(), /not valid JSON/);
  });

  it("refuses an invalid JSON body and an invalid NDJSON line", () => {
    const body = createResponseMasker(new WordMasker(), { contentType: "application/json", fields: ["a"] });
    expect(push(body, `{"a":"${EMAIL}",`)).toBe("");
    expectFailure(() => body.end(), /response body is not valid JSON/);

    const lines = createResponseMasker(new WordMasker(), { contentType: "application/x-ndjson", fields: ["a"] });
    expectFailure(() => push(lines, `{"a":"${EMAIL}"}\n{"a": nope}\n`), /response line is not valid JSON/);
  });

  it("refuses bytes that are not UTF-8", () => {
    const responseMasker = createResponseMasker(new WordMasker(), sse);
    expectFailure(() => responseMasker.push(new Uint8Array([0x64, 0x61, 0xff, 0x0a])), /not valid UTF-8/);
    const truncated = createResponseMasker(new WordMasker(), { contentType: "text/plain", fields: [] });
    truncated.push(new Uint8Array([0x61, 0xc3]));
    expectFailure(() => truncated.end(), /not valid UTF-8/);
  });

  it("fails a call that overruns the time budget, without releasing its output", () => {
    const slow = new WordMasker();
    const createStream = slow.createStream.bind(slow);
    slow.createStream = (): MaskingStream => {
      const stream = createStream();
      return {
        push(chunk) {
          // A detector that takes too long: 30 ms of CPU, however busy the host.
          const started = process.threadCpuUsage();
          for (let used = 0; used < 30_000; ) {
            const { user, system } = process.threadCpuUsage(started);
            used = user + system;
          }
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
    };
    const responseMasker = createResponseMasker(slow, { ...sse, timeBudgetMs: 5 });
    expectFailure(
      () => push(responseMasker, chatChunk([deltaChoice({ content: "hello" })])),
      /ms of CPU, over its budget of 5 ms/,
    );
    expectFailure(() => responseMasker.end(), /already failed/);
  });

  it("does not count time the thread spent not running (a loaded host)", () => {
    const waiting = new WordMasker();
    const maskText = waiting.maskText.bind(waiting);
    waiting.maskText = (text) => {
      // Blocks the thread for 300 ms without using the CPU: far over the
      // budget in wall time, far under it in CPU time even on a loaded host.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      return maskText(text);
    };
    const responseMasker = createResponseMasker(waiting, {
      contentType: "application/json",
      fields: ["a"],
      timeBudgetMs: 100,
    });
    push(responseMasker, JSON.stringify({ a: EMAIL }));
    expect(decoder.decode(responseMasker.end())).toBe(JSON.stringify({ a: LABEL }));
  });

  it("reads the CPU clock at most once per 2 % of the budget of wall time, not around every step", () => {
    // Each reading is a system call; 5 % of the agent's time when it was read around every step.
    const threadCpuUsage = process.threadCpuUsage;
    let readings = 0;
    process.threadCpuUsage = (previous?: NodeJS.CpuUsage) => {
      readings += 1;
      return threadCpuUsage.call(process, previous);
    };
    try {
      const responseMasker = createResponseMasker(new WordMasker(), { ...sse, timeBudgetMs: 100 });
      const started = performance.now();
      for (let step = 0; step < 2000; step += 1) {
        expect(push(responseMasker, chatChunk([deltaChoice({ content: `word ${step}` })]))).toContain(`word ${step}`);
      }
      const elapsedMs = performance.now() - started;
      expect(readings).toBeGreaterThan(0);
      expect(readings).toBeLessThanOrEqual(Math.ceil(elapsedMs / 2) + 1);
    } finally {
      process.threadCpuUsage = threadCpuUsage;
    }
  });

  it("turns an engine error into a MaskingError that does not repeat its message", () => {
    const broken = new WordMasker();
    broken.maskText = () => {
      throw new TypeError(`cannot mask ${EMAIL}`);
    };
    const responseMasker = createResponseMasker(broken, { contentType: "application/json", fields: ["a"] });
    push(responseMasker, JSON.stringify({ a: EMAIL }));
    expectFailure(() => responseMasker.end(), /masking the response failed \(TypeError\)/);
  });

  it("refuses an event larger than 4 MiB, complete or not", () => {
    const big = "x".repeat(MAX_EVENT_BYTES);
    const incomplete = createResponseMasker(new WordMasker(), sse);
    expect(push(incomplete, 'data: {"choices":[{"delta":{"content":"')).toBe("");
    expectFailure(() => push(incomplete, big), /exceeds 4194304 bytes/);

    const complete = createResponseMasker(new WordMasker(), { contentType: "application/x-ndjson", fields: ["a"] });
    expectFailure(() => push(complete, `{"a":"${big}"}\n`), /exceeds/);
  });

  it("counts bytes, not characters, against the event limit", () => {
    const responseMasker = createResponseMasker(new WordMasker(), sse);
    // 1.5 M three-byte characters: under 4 Mi characters, over 4 MiB.
    expectFailure(() => push(responseMasker, `data: "${"€".repeat(1_500_000)}`), /exceeds/);
  });

  it("refuses invalid field paths and non-UTF-8 charsets at the first call", () => {
    const badPath = createResponseMasker(new WordMasker(), { contentType: "application/json", fields: ["a..b"] });
    expectFailure(() => badPath.push(encoder.encode("{}")), /field path "a\.\.b"/);
    expectFailure(() => badPath.end(), /field path/);
    const latin1 = createResponseMasker(new WordMasker(), {
      contentType: "text/plain; charset=iso-8859-1",
      fields: [],
    });
    expectFailure(() => latin1.end(), /charset iso-8859-1/);
  });

  it("refuses calls after the end", () => {
    const responseMasker = createResponseMasker(new WordMasker(), sse);
    responseMasker.end();
    expectFailure(() => push(responseMasker, "data: [DONE]\n\n"), /already ended/);
  });
});
