import fc from "fast-check";
import { ENTITY_TYPES, Masker, type MaskingProfile } from "../src/index.js";

// Property: a secret after an assignment key word, in every common form
// (`password=…`, `token: …`, `"password": "…"`, `\"password\": \"…\"` inside
// a JSON string, `Authorization: Bearer …`), whatever printable characters
// it is made of, is replaced to its very end: the masked text is exactly the
// form around the value with `[SECRET]` in its place, streamed or whole.

const profile: MaskingProfile = {
  entities: [...ENTITY_TYPES],
  custom: [],
  denyList: [],
  style: "label",
  fields: [],
  onError: "block",
  maskPromptsInAudit: false,
};
const masker = new Masker(profile);

const KEYS = [
  "password",
  "passwd",
  "pwd",
  "secret",
  "token",
  "api_key",
  "api-key",
  "apikey",
  "client_secret",
  "access_token",
  "DB_PASSWORD",
  "aws_secret_access_key",
  "x-auth-token",
];

/** Upper, lower or mixed case. */
const anyCase = (word: string) =>
  fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((upper) => [...word].map((char, index) => (upper[index] ? char.toUpperCase() : char)).join(""));
const key = fc.constantFrom(...KEYS).chain(anyCase);

/** Printable ASCII without white space: what a password is made of. */
const printable = (minLength: number) =>
  fc.string({
    unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
    minLength,
    maxLength: 40,
  });
/** Values other detectors see something in (card digits, an email, a token, a key word of its own). */
const ENTITY = fc.constantFrom(
  "4111111111111111",
  "4111-1111-1111-1111",
  "john@example.com",
  "10.0.0.1",
  "2001:db8::1",
  "+14155550100",
  "123-45-6789",
  "DE89370400440532013000",
  "sk-proj-abcdefghij_0123456789",
  "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
  "token:x",
  "-----BEGIN",
);
const value = fc.oneof(
  printable(1),
  fc.tuple(printable(0), ENTITY, printable(0)).map((parts) => parts.join("")),
);

const backslashed = (text: string, quote: string) =>
  text.replace(new RegExp(`[\\\\${quote}]`, "g"), (char) => `\\${char}`);

interface Form {
  /** The text, and what masking it must give. */
  text: string;
  masked: string;
}

/** `key=value`, `key: value`, `key => value`…: the value ends at white space. */
const unquoted = fc
  .tuple(
    key,
    fc.constantFrom("=", ": ", ":", " = ", "\t=\t", " => ", " := ", " == "),
    // A value that starts with a quote is read as a quoted one (below); a
    // value of only `=` and `>` cannot be told from the separators `==`, `=>`.
    value.filter((v) => !/^\\?["'`]/.test(v) && !/^[=>]{1,2}$/.test(v)),
    fc.constantFrom("", " and more", "\nnext line", "\t#"),
  )
  .map(
    ([k, separator, v, after]): Form => ({
      text: `${k}${separator}${v}${after}`,
      masked: `${k}${separator}[SECRET]${after}`,
    }),
  );

/** `key="value"`, `'key': 'value'`, `"key": "value"`: to the closing quote, backslash escapes honoured. */
const quoted = fc
  .tuple(
    key,
    fc.constantFrom('"', "'", "`"),
    fc.boolean(),
    fc.constantFrom("=", ": ", ":"),
    value,
    fc.constantFrom("", ",", "}", " and more", ";\n"),
  )
  .map(([k, quote, quotedKey, separator, v, after]): Form => {
    const name = quotedKey ? `${quote}${k}${quote}` : k;
    return {
      text: `${name}${separator}${quote}${backslashed(v, quote)}${quote}${after}`,
      masked: `${name}${separator}${quote}[SECRET]${quote}${after}`,
    };
  });

/** `{\"key\": \"value\"}`: a JSON document inside a JSON string (a raw request body). */
const nested = fc.tuple(key, value).map(([k, v]): Form => {
  const inner = backslashed(backslashed(v, '"'), '"');
  return {
    text: `{"content": "{\\"${k}\\": \\"${inner}\\", \\"n\\": 1}"}`,
    masked: `{"content": "{\\"${k}\\": \\"[SECRET]\\", \\"n\\": 1}"}`,
  };
});

/** `Authorization: Bearer value`: the scheme and the credential. */
const authorization = fc
  .tuple(
    anyCase("Authorization"),
    fc.constantFrom("Bearer", "Basic", "token", "Digest"),
    value.filter((v) => !/^\\?["'`]/.test(v)),
    fc.boolean(),
  )
  .map(
    ([name, scheme, v, json]): Form =>
      json
        ? { text: `"${name}": "${scheme} ${backslashed(v, '"')}"`, masked: `"${name}": "[SECRET]"` }
        : { text: `${name}: ${scheme} ${v}\r\n`, masked: `${name}: [SECRET]\r\n` },
  );

const FORM = fc
  .tuple(fc.oneof(unquoted, quoted, nested, authorization), fc.constantFrom("", "Config: ", "set ", "("))
  .map(([form, before]): Form => ({ text: before + form.text, masked: before + form.masked }));

describe("assignment secrets", () => {
  it("are masked to the end of the value in every form, whole and streamed", () => {
    fc.assert(
      fc.property(FORM, fc.integer({ min: 1, max: 9 }), ({ text, masked }, size) => {
        expect(masker.maskText(text).text).toBe(masked);
        const stream = masker.createStream();
        let released = "";
        for (let index = 0; index < text.length; index += size)
          released += stream.push(text.slice(index, index + size));
        expect(released + stream.end()).toBe(masked);
      }),
      { numRuns: 1500, seed: 20260514 },
    );
  });
});
