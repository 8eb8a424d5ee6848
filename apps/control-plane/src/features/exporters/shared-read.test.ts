import { sharedRead } from "./shared-read.js";

describe("sharedRead", () => {
  it("gives concurrent callers one read, and starts a fresh one once it settled", async () => {
    let reads = 0;
    let release: (value: number) => void = () => undefined;
    const read = sharedRead(
      () =>
        new Promise<number>((resolve) => {
          reads += 1;
          release = resolve;
        }),
    );
    const first = [read(), read(), read()];
    expect(reads).toBe(1);
    release(7);
    expect(await Promise.all(first)).toEqual([7, 7, 7]);
    const later = read();
    expect(reads).toBe(2);
    release(8);
    expect(await later).toBe(8);
  });

  it("lets the next caller read again after a failed read", async () => {
    let attempt = 0;
    const read = sharedRead(async () => {
      attempt += 1;
      if (attempt === 1) throw new Error("database away");
      return attempt;
    });
    await expect(read()).rejects.toThrow("database away");
    expect(await read()).toBe(2);
  });
});
