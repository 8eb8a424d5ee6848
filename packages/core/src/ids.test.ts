import { uuidv7 } from "./ids.js";

describe("uuidv7", () => {
  it("produces RFC 9562 version 7 UUIDs", () => {
    expect(uuidv7()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("sorts by creation time", () => {
    const earlier = uuidv7(1_700_000_000_000);
    const later = uuidv7(1_700_000_000_001);
    expect(earlier < later).toBe(true);
    expect(earlier.slice(0, 13)).toBe("018bcfe5-6800");
  });

  it("never repeats its random part, across pool refills", () => {
    const now = 1_700_000_000_000;
    const ids = new Set(Array.from({ length: 2_000 }, () => uuidv7(now).slice(14)));
    expect(ids.size).toBe(2_000);
  });
});
