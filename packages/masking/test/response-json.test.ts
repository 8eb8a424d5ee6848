import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { MaskingError } from "../src/masker.js";
import { parseJson, serializeJson } from "../src/response-json.js";

const roundTrip = (text: string) => serializeJson(parseJson(text, "a document"));

describe("parseJson and serializeJson", () => {
  it.each([
    '{"a":1.0}',
    '{"a":1e5,"b":1E-7,"c":-0,"d":-0.0}',
    "[12345678901234567891,9007199254740993,123456789012345]",
    '{"model":"llama-3.1-8b","n":1.50}',
    '{"text":"a: 1.5","n":7}',
    '{"a":[0,-1,2.5e-3,{"b":[100.000]}]}',
    "1.0",
    "-0",
    '"bare"',
  ])("gives %s back exactly", (text) => {
    expect(roundTrip(text)).toBe(text);
  });

  it("keeps the source text of any JSON number", () => {
    const number = fc.stringMatching(/^-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,10})?([eE][+-]?[0-9]{1,3})?$/);
    fc.assert(
      fc.property(fc.array(number, { minLength: 1, maxLength: 5 }), fc.string(), (numbers, text) => {
        const document = `{"s":${JSON.stringify(text)},"v":[${numbers.join(",")}]}`;
        expect(roundTrip(document)).toBe(document);
      }),
      { numRuns: 500 },
    );
  });

  it("refuses invalid JSON without quoting it", () => {
    expect(() => parseJson('{"email":"john@example.com"', "a response event")).toThrow(MaskingError);
    expect(() => parseJson('{"email":"john@example.com"', "a response event")).toThrow(
      /^a response event is not valid JSON$/,
    );
  });
});
