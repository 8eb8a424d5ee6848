import { Writable } from "node:stream";
import { createLogger, withoutRedaction } from "./logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)));
      callback();
    },
  });
  return { logger: createLogger({ name: "test", destination }), lines };
}

describe("logger", () => {
  it("redacts credentials at the top level and one object down", () => {
    const { logger, lines } = capture();
    logger.info({ token: "t0p", headers: { authorization: "Bearer x" }, agent: { secret: "s3" } }, "line");
    expect(lines[0]).toMatchObject({
      token: "[redacted]",
      headers: { authorization: "[redacted]" },
      agent: { secret: "[redacted]" },
    });
  });

  it("has an unredacted child for lines built only from known, secret-free fields", () => {
    const { logger, lines } = capture();
    withoutRedaction(logger).info({ subject: { id: "key-1", tokenId: "jti-1" }, key: "a name" }, "decision");
    logger.info({ key: "still redacted" }, "after");
    expect(lines[0]).toMatchObject({ subject: { id: "key-1", tokenId: "jti-1" }, key: "a name", name: "test" });
    expect(lines[1]).toMatchObject({ key: "[redacted]" });
  });
});
