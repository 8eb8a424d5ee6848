import { z } from "zod";
import { ConfigError, envBoolean, envPort, parseEnv } from "./env.js";

const schema = z.object({
  PORT: envPort.default(8080),
  DEBUG: envBoolean.default(false),
  SECRET: z.string().min(8).optional(),
});

describe("parseEnv", () => {
  it("applies defaults for unset and empty variables alike", () => {
    expect(parseEnv(schema, {})).toEqual({ PORT: 8080, DEBUG: false });
    expect(parseEnv(schema, { PORT: "", DEBUG: "  ", SECRET: "" })).toEqual({ PORT: 8080, DEBUG: false });
  });

  it("parses set variables", () => {
    expect(parseEnv(schema, { PORT: "9000", DEBUG: "YES", SECRET: "long-enough" })).toEqual({
      PORT: 9000,
      DEBUG: true,
      SECRET: "long-enough",
    });
  });

  it("names every bad variable without echoing its value", () => {
    let error: unknown;
    try {
      parseEnv(schema, { PORT: "99999", DEBUG: "maybe", SECRET: "short" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/PORT/);
    expect(message).toMatch(/DEBUG: expected true or false/);
    expect(message).toMatch(/SECRET/);
    expect(message).not.toContain("short");
    expect(message).not.toContain("maybe");
  });

  it("ignores variables the schema does not name", () => {
    expect(parseEnv(schema, { OTHER: "x" })).toEqual({ PORT: 8080, DEBUG: false });
  });
});
