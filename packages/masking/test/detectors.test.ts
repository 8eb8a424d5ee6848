import { createHmac } from "node:crypto";
import { type EntityType, Masker, MaskingError, type MaskingProfile } from "../src/index.js";

function profile(overrides: Partial<MaskingProfile> = {}): MaskingProfile {
  return {
    entities: [],
    custom: [],
    denyList: [],
    style: "label",
    fields: [],
    onError: "block",
    maskPromptsInAudit: false,
    ...overrides,
  };
}

const ALL: EntityType[] = ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET"];

/** What maskText makes of `text` with only `entity` switched on. */
function masked(entity: EntityType, text: string): string {
  return new Masker(profile({ entities: [entity] })).maskText(text).text;
}

/** Positive cases: the value alone, and inside a sentence, is replaced by the label. */
function expectMasked(entity: EntityType, values: string[]): void {
  it.each(values)(`%s is ${entity}`, (value) => {
    expect(masked(entity, value)).toBe(`[${entity}]`);
    expect(masked(entity, `Reach me at ${value}, thanks.`)).toBe(`Reach me at [${entity}], thanks.`);
    // And with every detector on, still masked (perhaps as another entity), never in clear.
    expect(new Masker(profile({ entities: ALL })).maskText(`x ${value} y`).text).not.toContain(value);
  });
}

function expectNotMasked(entity: EntityType, texts: string[]): void {
  it.each(texts)(`%s is left alone by ${entity}`, (text) => {
    expect(masked(entity, text)).toBe(text);
  });
}

describe("EMAIL", () => {
  expectMasked("EMAIL", [
    "john.doe@example.com",
    "a@b.co",
    "x+tag@mail.example.co.uk",
    "first_last%ops@corp-mail.example.org",
    "J.Smith@Example.COM",
  ]);
  expectNotMasked("EMAIL", [
    "john@localhost",
    "root@10.0.0.1",
    "john@example",
    "john@example.c",
    "@example.com",
    "john@.com",
    "no at sign here",
    "john.@example.com",
  ]);

  it("takes the whole domain, but not a sentence's final dot", () => {
    expect(masked("EMAIL", "Mail john@example.com.")).toBe("Mail [EMAIL].");
    expect(masked("EMAIL", "Mail john@sub.example.co.uk today")).toBe("Mail [EMAIL] today");
  });

  it("masks the valid part after a doubled dot", () => {
    expect(masked("EMAIL", "john..doe@example.com")).toBe("john..[EMAIL]");
  });
});

describe("PHONE", () => {
  expectMasked("PHONE", [
    "(415) 555-0100",
    "(415)555-0100",
    "415-555-0100",
    "415.555.0100",
    "415 555 0100",
    "1-800-555-0100",
    "+1 415 555 0100",
    "+1 (415) 555-0100",
    "+14155550100",
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "+49-30-1234567",
    "020 7946 0958",
    "030 12345678",
    "01 23 45 67 89",
  ]);
  expectNotMasked("PHONE", [
    "2024-01-15",
    "15.01.2024",
    "2024 01 15",
    "version 1.2.3",
    "release 10.0.19041.1234",
    "in 1999 and 2024",
    "id 4155550100",
    "123-456-7890",
    "+123",
    "at 10:30:00",
    "000-12-3456",
    "4111 1111 1111 1112",
    "415-555-0100-22",
    "tel415-555-0100",
  ]);
});

describe("CREDIT_CARD", () => {
  expectMasked("CREDIT_CARD", [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "5500 0000 0000 0004",
    "378282246310005",
    "3782 822463 10005",
    "6011000990139424",
  ]);
  expectNotMasked("CREDIT_CARD", [
    "4111 1111 1111 1112",
    "4111111111111112",
    "41111111111111111111",
    "4111-1111 1111-1111",
    "card4111111111111111",
    "12 34 56 78 90 12 34",
  ]);

  it("takes the longest Luhn-valid number when more digits follow", () => {
    expect(masked("CREDIT_CARD", "4111 1111 1111 1111 2024")).toBe("[CREDIT_CARD] 2024");
  });
});

describe("US_SSN", () => {
  expectMasked("US_SSN", ["123-45-6789", "123 45 6789", "078-05-1120", "899-99-9999"]);
  expectNotMasked("US_SSN", [
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "999-12-3456",
    "123-00-4567",
    "123-45-0000",
    "123-45-67890",
    "1234-56-789",
    "123-45 6789",
    "1-123-45-6789",
    "123-45-6789-1",
  ]);
});

describe("IBAN", () => {
  expectMasked("IBAN", [
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91ABNA0417164300",
  ]);
  expectNotMasked("IBAN", [
    "DE89 3704 0044 0532 0130 01",
    "DE89370400440532013001",
    "GB82WEST1234569876543",
    "XDE89370400440532013000",
    "DE89 37040 0440 5320 1300 0",
  ]);
});

describe("IP_ADDRESS", () => {
  expectMasked("IP_ADDRESS", [
    "192.168.1.1",
    "10.0.0.254",
    "255.255.255.255",
    "0.0.0.0",
    "2001:db8::8a2e:370:7334",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "fe80::1",
    "::ffff:192.0.2.1",
  ]);
  expectNotMasked("IP_ADDRESS", [
    "version 1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "v1.2.3.4",
    "at 10:30:00",
    "mac 00:1A:2B:3C:4D:5E",
    "std::vector",
    "loopback ::1",
    "ratio 3:2",
  ]);

  it("keeps ports, prefixes and sentence punctuation out", () => {
    expect(masked("IP_ADDRESS", "host 10.0.0.1:8080")).toBe("host [IP_ADDRESS]:8080");
    expect(masked("IP_ADDRESS", "net 10.0.0.0/8.")).toBe("net [IP_ADDRESS]/8.");
    expect(masked("IP_ADDRESS", "gateway fe80::1:")).toBe("gateway [IP_ADDRESS]:");
  });
});

describe("SECRET", () => {
  const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Yc\nq9lG0w==\n-----END RSA PRIVATE KEY-----";
  const jwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  expectMasked("SECRET", [
    pem,
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
    jwt,
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAIOSFODNN7EXAMPLE",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "gho_0123456789abcdefghijABCDEFGHIJ012345",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-1234567890-0987654321-abcdefghij",
    "sk-abcdefghijklmnopqrstuvwxyz012345",
    "sk-proj-abcdefghij_0123456789-ABCDEFGHIJ",
    "mg_0123456789abcdefghijABCDEFGHIJ12",
    "mgagent_0123456789abcdefghijABCDEFGHIJ12",
  ]);
  expectNotMasked("SECRET", [
    "sk-short",
    "task-1234567890abcdefghijklmnop",
    "AKIA1234",
    "AKIAIOSFODNN7EXAMPLE1",
    "ghp_short",
    "eyJhbGciOiJIUzI1NiJ9 alone",
    "your password is long",
    "passwords=many",
    "password=",
    '"password": ""',
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl\n-----END CERTIFICATE-----",
    "img_0123456789abcdefghijABCDEFGHIJ12",
  ]);

  it("masks a private-key block without an END marker to the end of the text", () => {
    expect(masked("SECRET", "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB")).toBe("key:\n[SECRET]");
  });

  it("keeps the text after a key block", () => {
    expect(masked("SECRET", `${pem}\nthat was the key`)).toBe("[SECRET]\nthat was the key");
  });

  it.each([
    ["password=hunter2", "password=[SECRET]"],
    ["passwd: hunter2", "passwd: [SECRET]"],
    ["secret=abc123", "secret=[SECRET]"],
    ["api_key=abc123.", "api_key=[SECRET]"],
    ["API-KEY = abc123", "API-KEY = [SECRET]"],
    ["DB_PASSWORD=s3cr3t!", "DB_PASSWORD=[SECRET]"],
    ["export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "export AWS_SECRET_ACCESS_KEY=[SECRET]"],
    ['{"password": "correct horse battery"}', '{"password": "[SECRET]"}'],
    ["pwd='p@ss w0rd' ok", "pwd='[SECRET]' ok"],
    ["client_secret:\tabc,def", "client_secret:\t[SECRET]"],
  ])("masks the value of %s", (text, expected) => {
    expect(masked("SECRET", text)).toBe(expected);
  });

  it.each([
    ["password=hunter2!@#$%", "password=[SECRET]"],
    ["token: abc.def-ghi/+=", "token: [SECRET]"],
    ["Token:abc, then more", "Token:[SECRET] then more"],
    ["PWD=p@ss;word.", "PWD=[SECRET]"],
    ["password => 'x y'", "password => '[SECRET]'"],
    ["password := s3cr3t", "password := [SECRET]"],
    ["PASSWORD==abc", "PASSWORD=[SECRET]"],
    ['{"password": "abc\\"def", "user": "bob"}', '{"password": "[SECRET]", "user": "bob"}'],
    ['{"password": "abc\\\\", "user": "bob"}', '{"password": "[SECRET]", "user": "bob"}'],
    [
      '{"content": "{\\"token\\": \\"a\\\\\\"b\\", \\"n\\": 1}"}',
      '{"content": "{\\"token\\": \\"[SECRET]\\", \\"n\\": 1}"}',
    ],
    ["Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: [SECRET]"],
    ["authorization: basic dXNlcjpwYXNz\r\nHost: x", "authorization: [SECRET]\r\nHost: x"],
    ['"Proxy-Authorization": "Bearer abc def"', '"Proxy-Authorization": "[SECRET]"'],
    ["client_secret = 'a\\'b' # comment", "client_secret = '[SECRET]' # comment"],
  ])("masks the whole value, punctuation included, of %s", (text, expected) => {
    expect(masked("SECRET", text)).toBe(expected);
    expect(new Masker(profile({ entities: ALL })).maskText(text).text).toBe(expected);
  });

  it.each(["max_tokens: 100", "tokens=5", "token count: 3", '"token": ""', "password:\nnext line"])(
    "leaves %s alone",
    (text) => {
      expect(masked("SECRET", text)).toBe(text);
    },
  );

  it("masks a JWT through all its segments but not a trailing dot", () => {
    expect(masked("SECRET", `Bearer ${jwt}.`)).toBe("Bearer [SECRET].");
  });

  it("masks a very long base64 JSON run even before its dot", () => {
    const long = `eyJ${"a".repeat(200)}`;
    expect(masked("SECRET", `token ${long} end`)).toBe("token [SECRET] end");
  });
});

describe("overlapping matches", () => {
  it("the earliest start wins", () => {
    const masker = new Masker(profile({ entities: ["SECRET", "EMAIL"] }));
    expect(masker.maskText("secret=sk-proj-abcdefghij_0123456789-ABCDEFGHIJ").text).toBe("secret=[SECRET]");
    const custom = new Masker(profile({ entities: ["EMAIL"], custom: [{ name: "DOMAIN", pattern: "example" }] }));
    expect(custom.maskText("bob@example.com and example").text).toBe("[EMAIL] and [DOMAIN]");
  });

  it("a validated entity beats a longer custom pattern", () => {
    const masker = new Masker(
      profile({ entities: ["EMAIL"], custom: [{ name: "PROFILE_URL", pattern: "[a-z]+@example\\.com/[a-z]+" }] }),
    );
    expect(masker.maskText("see bob@example.com/home").text).toBe("see [EMAIL]/home");
    expect(masker.maskText("see bob@example.com home").text).toBe("see [EMAIL] home");
  });

  it("among custom patterns, the longest wins", () => {
    const masker = new Masker(
      profile({
        custom: [
          { name: "SHORT", pattern: "ab" },
          { name: "LONG", pattern: "bcdef" },
        ],
      }),
    );
    expect(masker.maskText("abcdef").text).toBe("a[LONG]");
    expect(masker.maskText("abcde").text).toBe("[SHORT]cde");
  });

  it("a checksum-invalid IBAN is left alone whole, not relabelled as a card or a phone", () => {
    // Its account digits pass the Luhn check and read as a national phone number.
    const invalid = "DE89 3704 0044 0532 0130 01";
    for (const entities of [ALL, ["CREDIT_CARD"], ["PHONE"]] as EntityType[][]) {
      expect(new Masker(profile({ entities })).maskText(`IBAN ${invalid}.`).text).toBe(`IBAN ${invalid}.`);
    }
    expect(new Masker(profile({ entities: ALL })).maskText("IBAN DE89 3704 0044 0532 0130 00.").text).toBe(
      "IBAN [IBAN].",
    );
    // A card after a country-code-like word is still a card when the two do not form one chain.
    const cards = new Masker(profile({ entities: ALL }));
    expect(cards.maskText("XX00 4111 1111 1111 1111").text).toBe("XX00 4111 1111 1111 1111");
    expect(cards.maskText("DE89 4111111111111111").text).toBe("DE89 [CREDIT_CARD]");
    expect(cards.maskText("DE89 4111-1111-1111-1111").text).toBe("DE89 [CREDIT_CARD]");
  });

  it("a validated entity beats a custom pattern that overlaps it, wherever each starts", () => {
    const masker = new Masker(
      profile({
        entities: ALL,
        custom: [
          { name: "ACCOUNT", pattern: "ACCT-[0-9]{4}" },
          { name: "DB_KEY", pattern: "DB_PASSWORD" },
        ],
      }),
    );
    expect(masker.maskText("ACCT-4111 1111 1111 1111").text).toBe("ACCT-[CREDIT_CARD]");
    expect(masker.maskText("ACCT-1234 and DB_PASSWORD=hunter2").text).toBe("[ACCOUNT] and [DB_KEY]=[SECRET]");
  });

  it("the longer of two overlapping entities wins, whichever starts first", () => {
    const masker = new Masker(profile({ entities: ALL }));
    // Not a one-word password followed by twelve card digits in clear.
    expect(masker.maskText("The password: 4111 1111 1111 1111").text).toBe("The password: [CREDIT_CARD]");
    expect(masker.maskText("see 1.2.3.123-45-6789").text).toBe("see 1.2.3.[US_SSN]");
  });

  it("a secret's value that an entity inside it outranks is cut there, not released", () => {
    const masker = new Masker(profile({ entities: ALL }));
    expect(masker.maskText("pwd=x-4111 1111 1111 1111 ok").text).toBe("pwd=[SECRET][CREDIT_CARD] ok");
    expect(masker.detect("pwd=x-4111 1111 1111 1111").map(({ name, value }) => [name, value])).toEqual([
      ["SECRET", "x-"],
      ["CREDIT_CARD", "4111 1111 1111 1111"],
    ]);
  });

  it("a private key quoted after a key word is masked to its END marker", () => {
    const masker = new Masker(profile({ entities: ALL }));
    const key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Yc\nq9lG0w==\n-----END RSA PRIVATE KEY-----";
    expect(masker.maskText(`private_key="${key}"\nnext`).text).toBe('private_key="[SECRET]"\nnext');
    expect(masker.maskText(`private_key=${key}`).text).toBe("private_key=[SECRET]");
  });

  it("on the same span the fixed entity order decides", () => {
    const masker = new Masker(profile({ entities: ["PHONE", "US_SSN"] }));
    expect(masker.maskText("078-05-1120").text).toBe("[US_SSN]");
    const named = new Masker(
      profile({ custom: [{ name: "BIRD", pattern: "Falcon" }], denyList: [{ name: "PROJECT", terms: ["falcon"] }] }),
    );
    expect(named.maskText("Falcon").text).toBe("[BIRD]");
  });
});

describe("custom detectors", () => {
  const masker = new Masker(
    profile({
      custom: [
        { name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" },
        { name: "TICKET", pattern: "\\bops-\\d+\\b", flags: "i" },
      ],
    }),
  );

  it("mask what their pattern matches, with their flags", () => {
    expect(masker.maskText("EMP-123456 filed OPS-42.").text).toBe("[EMPLOYEE_ID] filed [TICKET].");
    expect(masker.maskText("EMP-12345 and emp-123456").text).toBe("EMP-12345 and emp-123456");
    expect(masker.maskText("EMP-123456 EMP-654321").counts).toEqual({ EMPLOYEE_ID: 2 });
  });

  it("bound unbounded repetitions to the hold-back", () => {
    const digits = "1".repeat(100);
    const { text } = masker.maskText(`ops-${digits}`);
    expect(text.startsWith("[TICKET]")).toBe(false);
    const { text: short } = masker.maskText(`ops-${"1".repeat(40)}`);
    expect(short).toBe("[TICKET]");
  });

  it.each([
    ["(a)\\1", "backreferences"],
    ["a*", "empty"],
    ["(", "Invalid"],
    ["(?i:a)", "modifier"],
    [`a{2000}`, "more than"],
  ])("refuse %s", (pattern, message) => {
    expect(() => new Masker(profile({ custom: [{ name: "BAD", pattern }] }))).toThrow(MaskingError);
    expect(() => new Masker(profile({ custom: [{ name: "BAD", pattern }] }))).toThrow(message);
  });

  it("refuse bad names and flags", () => {
    expect(() => new Masker(profile({ custom: [{ name: "bad", pattern: "x" }] }))).toThrow(MaskingError);
    expect(() => new Masker(profile({ custom: [{ name: "BAD", pattern: "x", flags: "g" }] }))).toThrow(MaskingError);
  });
});

describe("deny-lists", () => {
  const masker = new Masker(
    profile({ denyList: [{ name: "PROJECT", terms: ["Project", "Project Falcon", "Blue Heron", "C++"] }] }),
  );

  it("match whole terms in any case, the longest first", () => {
    expect(masker.maskText("project falcon ships").text).toBe("[PROJECT] ships");
    expect(masker.maskText("PROJECT FALCON").counts).toEqual({ PROJECT: 1 });
    expect(masker.maskText("the Project").text).toBe("the [PROJECT]");
  });

  it("only at word boundaries", () => {
    expect(masker.maskText("Projector and Blue Heronry").text).toBe("Projector and Blue Heronry");
    expect(masker.maskText("Blue  Heron, blue\nheron").text).toBe("[PROJECT], [PROJECT]");
    expect(masker.maskText("ProjectX").text).toBe("ProjectX");
  });

  it("take terms with punctuation literally", () => {
    expect(masker.maskText("we use C++ here").text).toBe("we use [PROJECT] here");
    expect(masker.maskText("we use C+ here").text).toBe("we use C+ here");
  });
});

describe("styles", () => {
  const values = {
    EMAIL: "john@example.com",
    CREDIT_CARD: "4111 1111 1111 1111",
    PHONE: "(415) 555-0100",
  };

  it("label", () => {
    const masker = new Masker(profile({ entities: ALL }));
    expect(masker.maskText(`${values.EMAIL} ${values.CREDIT_CARD}`).text).toBe("[EMAIL] [CREDIT_CARD]");
  });

  it("partial keeps the last four digits of cards and phones only", () => {
    const masker = new Masker(profile({ entities: ALL, style: "partial" }));
    expect(masker.maskText(values.CREDIT_CARD).text).toBe("[CREDIT_CARD ****1111]");
    expect(masker.maskText(values.PHONE).text).toBe("[PHONE ****0100]");
    expect(masker.maskText(values.EMAIL).text).toBe("[EMAIL]");
    expect(masker.maskText("123-45-6789").text).toBe("[US_SSN]");
  });

  it("hash is stable within one key and differs with another", () => {
    const key = new Uint8Array(32).fill(7);
    const masker = new Masker(profile({ entities: ALL, style: "hash" }), { hashKey: key });
    const first = masker.maskText(`${values.EMAIL} and jane@example.com and ${values.EMAIL}`).text;
    const [a, b, c] = first.split(" and ");
    expect(a).toMatch(/^<EMAIL_[0-9a-f]{8}>$/);
    expect(a).toBe(c);
    expect(a).not.toBe(b);
    // The same key in another Masker (another stream of the session) agrees.
    const again = new Masker(profile({ entities: ALL, style: "hash" }), { hashKey: key });
    expect(again.maskText(values.EMAIL).text).toBe(a);
    const other = new Masker(profile({ entities: ALL, style: "hash" }), { hashKey: new Uint8Array(32).fill(8) });
    expect(other.maskText(values.EMAIL).text).not.toBe(a);
    expect(masker.maskText(values.CREDIT_CARD).text).toMatch(/^<CREDIT_CARD_[0-9a-f]{8}>$/);
  });

  it.each([16, 32, 100])("hash is HMAC-SHA256(key, entity NUL value) with a %i-byte key", (length) => {
    const key = new Uint8Array(length).map((_, index) => index * 7);
    const masker = new Masker(profile({ entities: ALL, style: "hash" }), { hashKey: key });
    const expected = createHmac("sha256", key).update("EMAIL\0john@example.com").digest("hex").slice(0, 8);
    expect(masker.maskText("john@example.com").text).toBe(`<EMAIL_${expected}>`);
  });

  it("hash needs a key", () => {
    expect(() => new Masker(profile({ entities: ["EMAIL"], style: "hash" }))).toThrow(MaskingError);
  });

  it("never emits the value", () => {
    const text = Object.values(values).join(" ; ");
    for (const style of ["label", "partial", "hash"] as const) {
      const masker = new Masker(profile({ entities: ALL, style }), { hashKey: new Uint8Array([1]) });
      const { text: out } = masker.maskText(text);
      for (const value of Object.values(values)) expect(out).not.toContain(value);
      expect(out).not.toContain("john");
    }
  });
});
