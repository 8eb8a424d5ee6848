import {
  checkMaskingPattern,
  DEFAULT_MAX_HOLDBACK,
  ENTITY_TYPES,
  Masker,
  MaskingError,
  type MaskingProfile,
  mergeProfiles,
  sessionMaskerOptions,
} from "../src/index.js";

function profile(overrides: Partial<MaskingProfile> = {}): MaskingProfile {
  return {
    entities: [...ENTITY_TYPES],
    custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }],
    denyList: [{ name: "PROJECT", terms: ["Project Falcon"] }],
    style: "label",
    fields: [],
    onError: "block",
    maskPromptsInAudit: false,
    ...overrides,
  };
}

/** Pushes `chunks` one by one; what each push released, then what end() released. */
function stream(masker: Masker, chunks: readonly string[]): { pushed: string[]; ended: string; held: number[] } {
  const channel = masker.createStream();
  const held: number[] = [];
  const pushed = chunks.map((chunk) => {
    const out = channel.push(chunk);
    held.push(channel.held);
    return out;
  });
  return { pushed, ended: channel.end(), held };
}

describe("mergeProfiles", () => {
  it("is undefined for no profiles", () => {
    expect(mergeProfiles([])).toBeUndefined();
  });

  it("unions the rules and keeps the strongest settings", () => {
    const merged = mergeProfiles([
      profile({
        entities: ["PHONE", "EMAIL"],
        custom: [{ name: "A", pattern: "a1" }],
        denyList: [{ name: "P", terms: ["x", "y"] }],
        style: "partial",
        fields: ["response"],
        onError: "pass",
      }),
      profile({
        entities: ["EMAIL", "SECRET"],
        custom: [
          { name: "A", pattern: "a1", flags: "" },
          { name: "B", pattern: "b1", flags: "i" },
        ],
        denyList: [
          { name: "P", terms: ["y", "z"] },
          { name: "Q", terms: ["q"] },
        ],
        style: "hash",
        fields: ["response", "message.content"],
        onError: "block",
        maskPromptsInAudit: true,
      }),
    ]);
    expect(merged).toEqual({
      entities: ["EMAIL", "PHONE", "SECRET"],
      custom: [
        { name: "A", pattern: "a1" },
        { name: "B", pattern: "b1", flags: "i" },
      ],
      denyList: [
        { name: "P", terms: ["x", "y", "z"] },
        { name: "Q", terms: ["q"] },
      ],
      style: "hash",
      fields: ["response", "message.content"],
      onError: "block",
      maskPromptsInAudit: true,
    });
  });

  it("label beats hash beats partial; pass only when all pass", () => {
    const styles = (list: MaskingProfile["style"][]) => mergeProfiles(list.map((style) => profile({ style })))?.style;
    expect(styles(["partial", "label"])).toBe("label");
    expect(styles(["hash", "partial"])).toBe("hash");
    expect(styles(["hash", "label", "partial"])).toBe("label");
    expect(mergeProfiles([profile({ onError: "pass" }), profile({ onError: "pass" })])?.onError).toBe("pass");
  });
});

describe("Masker", () => {
  const masker = new Masker(profile());

  it("counts what it masks per entity and name", () => {
    const { text, counts } = masker.maskText(
      "Mail john@example.com or jane@example.com, card 4111 1111 1111 1111, EMP-123456 on Project Falcon.",
    );
    expect(text).toBe("Mail [EMAIL] or [EMAIL], card [CREDIT_CARD], [EMPLOYEE_ID] on [PROJECT].");
    expect(counts).toEqual({ EMAIL: 2, CREDIT_CARD: 1, EMPLOYEE_ID: 1, PROJECT: 1 });
  });

  it("leaves text without matches unchanged", () => {
    expect(masker.maskText("")).toEqual({ text: "", counts: {} });
    expect(masker.maskText("Hello, world.")).toEqual({ text: "Hello, world.", counts: {} });
  });

  it("lists what it detects", () => {
    expect(masker.detect("to john@example.com: password=hunter2")).toEqual([
      { name: "EMAIL", start: 3, end: 19, value: "john@example.com" },
      { name: "SECRET", start: 30, end: 37, value: "hunter2" },
    ]);
  });

  it("reports its hold-back bound", () => {
    // Without a deny-list: the window plus the longest match a rival
    // starting inside it could still outrank.
    expect(new Masker(profile({ denyList: [] })).holdback).toBe(2 * DEFAULT_MAX_HOLDBACK);
    expect(new Masker(profile({ denyList: [] }), { maxHoldback: 100 }).holdback).toBe(200);
    // One detector has no rivals.
    expect(new Masker(profile({ entities: ["EMAIL"], custom: [], denyList: [] })).holdback).toBe(DEFAULT_MAX_HOLDBACK);
    // A deny-list term reads past invisible characters and accents between its letters: a longer reach.
    expect(masker.holdback).toBeGreaterThan(2 * DEFAULT_MAX_HOLDBACK);
  });

  it.each([
    [{ maxHoldback: 10 }, "maxHoldback"],
    [{ maxHoldback: 64.5 }, "maxHoldback"],
  ])("refuses options %j", (options, message) => {
    expect(() => new Masker(profile(), options)).toThrow(message);
  });

  it("refuses profiles it cannot apply", () => {
    expect(() => new Masker(profile({ entities: ["NAME" as never] }))).toThrow(MaskingError);
    expect(() => new Masker(profile({ style: "blur" as never }))).toThrow(MaskingError);
    expect(() => new Masker(profile({ denyList: [{ name: "x", terms: ["a"] }] }))).toThrow(MaskingError);
    expect(() => new Masker(profile({ denyList: [{ name: "X", terms: [3 as never] }] }))).toThrow(MaskingError);
  });

  it("checkMaskingPattern says why a pattern cannot be used", () => {
    expect(checkMaskingPattern("EMP-[0-9]{6}")).toBeUndefined();
    expect(checkMaskingPattern("(?<=id:)[a-z]+", "i")).toBeUndefined();
    expect(checkMaskingPattern("(a)\\1")).toMatch(/backreferences/);
    expect(checkMaskingPattern("x?")).toMatch(/empty/);
    expect(checkMaskingPattern("(?<=a{100})b")).toMatch(/back/);
  });
});

describe("MaskingStream", () => {
  const masker = new Masker(profile());

  it("masks a value split across chunks", () => {
    const { pushed, ended } = stream(masker, ["Write to jo", "hn@ex", "ample.com", " today"]);
    expect(pushed).toEqual(["Write to ", "", "", "[EMAIL] "]);
    expect(ended).toBe("today");
  });

  it("releases text that cannot start a match at once", () => {
    const channel = masker.createStream();
    expect(channel.push("Hello, ")).toBe("Hello, ");
    expect(channel.held).toBe(0);
    expect(channel.push("how are you? ")).toBe("how are you? ");
    expect(channel.held).toBe(0);
    // A word could still be the start of an email address.
    expect(channel.push("Fine")).toBe("");
    expect(channel.held).toBe(4);
    // So could "Fine." (`Fine.Smith@…`); "Fine!" cannot.
    expect(channel.push(".")).toBe("");
    expect(channel.push("!")).toBe("Fine.!");
  });

  it("masks a card, an employee id and a deny-listed term split across chunks", () => {
    const { pushed, ended } = stream(masker, [
      "card 4111 11",
      "11 1111 1",
      "111, id EMP-12",
      "3456 of Project Fal",
      "con.",
    ]);
    expect(pushed.join("") + ended).toBe("card [CREDIT_CARD], id [EMPLOYEE_ID] of [PROJECT].");
    expect(pushed[0]).toBe("card ");
  });

  it("leaves a Luhn-invalid number alone", () => {
    const { pushed, ended } = stream(masker, ["4111 1111 ", "1111 1112 is not a card"]);
    expect(pushed.join("") + ended).toBe("4111 1111 1111 1112 is not a card");
  });

  it("flushes the held tail at the end", () => {
    const { pushed, ended } = stream(masker, ["mail me: john@example.com"]);
    expect(pushed).toEqual(["mail me: "]);
    expect(ended).toBe("[EMAIL]");
  });

  it("counts per stream", () => {
    const channel = masker.createStream();
    channel.push("a@example.com b@example.com ");
    expect(channel.counts).toEqual({ EMAIL: 2 });
    channel.push("EMP-123456 ");
    expect(channel.counts).toEqual({ EMAIL: 2, EMPLOYEE_ID: 1 });
  });

  it("emits a private-key block's mask once the block reaches the window, and drops the rest", () => {
    const body = "MIIEowIBAAKCAQEAx4YcQ9lG0wq1\n".repeat(40);
    const chunks = [
      "key:\n-----BEGIN RSA PRIV",
      "ATE KEY-----\n",
      ...(body.match(/.{1,7}/gs) ?? []),
      "-----END RSA ",
      "PRIVATE KEY-----\nbye",
    ];
    const { pushed, ended, held } = stream(masker, chunks);
    expect(pushed[0]).toBe("key:\n");
    // The marker is 32 characters, the body comes 7 at a time: the block
    // reaches 64 characters (nothing starting later can outrank it then)
    // with the fifth body chunk.
    expect(pushed.slice(1, 6).join("")).toBe("");
    expect(pushed[6]).toBe("[SECRET]");
    expect(pushed.slice(7, -1).join("")).toBe("");
    expect(pushed.join("") + ended).toBe("key:\n[SECRET]\nbye");
    expect(Math.max(...held)).toBeLessThanOrEqual(masker.holdback);
  });

  it("streams a long token without holding it", () => {
    const jwt = `eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJ${"a".repeat(2000)}.sig_${"b".repeat(300)}`;
    const text = `token ${jwt} end`;
    const { pushed, ended, held } = stream(masker, [...text]);
    expect(pushed.join("") + ended).toBe("token [SECRET] end");
    expect(Math.max(...held)).toBeLessThanOrEqual(masker.holdback);
    // The mask goes out once the JWT's shape is known, long before the token ends.
    const maskedAt = pushed.findIndex((out) => out.includes("[SECRET]"));
    expect(maskedAt).toBeLessThan(100);
  });

  it("hashes a long secret the same streamed or whole", () => {
    const key = new Uint8Array([9, 9, 9]);
    const hashing = new Masker(profile({ style: "hash" }), { hashKey: key });
    const text = `api_key=${"x".repeat(500)}😀${"y".repeat(100)} done`;
    const whole = hashing.maskText(text).text;
    expect(whole).toMatch(/^api_key=<SECRET_[0-9a-f]{8}> done$/);
    // Cut inside the surrogate pair, too.
    const { pushed, ended } = stream(hashing, [...text.split("")]);
    expect(pushed.join("") + ended).toBe(whole);
  });

  it("gives each session of the hash style a key of its own, and the other styles none", () => {
    const text = "write to jane.doe@example.com";
    const first = new Masker(profile({ style: "hash" }), sessionMaskerOptions({ style: "hash" }));
    const second = new Masker(profile({ style: "hash" }), sessionMaskerOptions({ style: "hash" }));
    // Stable within a session, unlinkable across sessions.
    expect(first.maskText(text).text).toBe(first.maskText(text).text);
    expect(first.maskText(text).text).not.toBe(second.maskText(text).text);
    expect(sessionMaskerOptions({ style: "hash" }).hashKey).toHaveLength(32);
    for (const style of ["label", "partial"] as const) {
      expect(sessionMaskerOptions({ style })).toEqual({});
      expect(new Masker(profile({ style }), sessionMaskerOptions({ style })).maskText(text).text).not.toContain(
        "jane.doe",
      );
    }
  });

  it("holds at most the bound for ordinary text, even when cut into single characters", () => {
    const text =
      "Dear team, the quarterly report is attached; revenue grew 15% (see section 4.2) and latency fell. " +
      "Contact ops_team_lead.backup.contact@example.com or call 415-555-0100 before 10:30. " +
      "x".repeat(300) +
      " averyveryveryveryveryveryveryveryveryveryverylongwordwithoutanyspacesatallforalongwhile " +
      "1234567890".repeat(20);
    const { pushed, ended, held } = stream(masker, [...text]);
    expect(pushed.join("") + ended).toBe(masker.maskText(text).text);
    expect(Math.max(...held)).toBeLessThanOrEqual(DEFAULT_MAX_HOLDBACK);
  });

  it("keeps a surrogate pair together when a chunk ends inside it", () => {
    const emoji = new Masker(
      profile({ custom: [{ name: "FACE", pattern: "\\u{1F600}" }], denyList: [{ name: "BIRD", terms: ["🦅 eagle"] }] }),
    );
    const text = "a 😀 b 🦅 eagle c";
    const whole = emoji.maskText(text).text;
    expect(whole).toBe("a [FACE] b [BIRD] c");
    const { pushed, ended } = stream(emoji, text.split(""));
    expect(pushed.join("") + ended).toBe(whole);
  });

  it("fails closed and stays failed", () => {
    const channel = masker.createStream();
    expect(channel.push("Hello, ")).toBe("Hello, ");
    expect(() => channel.push(42 as unknown as string)).toThrow(MaskingError);
    expect(() => channel.push("more")).toThrow("failed");
    expect(() => channel.end()).toThrow(MaskingError);
  });

  it("cannot be used after end()", () => {
    const channel = masker.createStream();
    channel.push("abc");
    expect(channel.end()).toBe("abc");
    expect(() => channel.push("x")).toThrow("ended");
  });
});

describe("surrogate pairs with custom detectors", () => {
  it("never releases half of an emoji, whatever a detector leaves undecided", () => {
    const masker = new Masker({
      entities: [],
      custom: [{ name: "TICKET", pattern: "T-[0-9]{4}" }],
      denyList: [],
      style: "label",
      fields: [],
      onError: "block",
      maskPromptsInAudit: false,
    });
    const text = "Great \u{1F600} bye T-1234.";
    for (let cut = 1; cut < text.length; cut++) {
      const stream = masker.createStream();
      const pieces = [stream.push(text.slice(0, cut)), stream.push(text.slice(cut)), stream.end()];
      for (const piece of pieces) expect(piece.isWellFormed()).toBe(true);
      expect(pieces.join("")).toBe(masker.maskText(text).text);
    }
  });
});
