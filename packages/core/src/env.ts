import { readFileSync } from "node:fs";
import { z } from "zod";

/**
 * Parses process environment variables with a zod object schema.
 *
 * Empty strings count as unset: `FOO=` in a compose file or a shell export
 * must mean "use the default", not "the empty value", or an accidentally
 * blank secret would pass validation. Errors name every bad variable but never
 * echo its value, since the value may be a secret.
 */
export function parseEnv<Schema extends z.ZodObject>(
  schema: Schema,
  env: Readonly<Record<string, string | undefined>> = process.env,
): z.output<Schema> {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `  ${issue.path.join(".") || "(config)"}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return result.data;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** `true`/`false`/`1`/`0`/`yes`/`no`, case-insensitive; anything else is an error. */
export const envBoolean = z.string().transform((value, ctx) => {
  const normalized = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(normalized)) return true;
  if (["false", "0", "no", "off"].includes(normalized)) return false;
  ctx.addIssue({ code: "custom", message: "expected true or false" });
  return z.NEVER;
});

/** A TCP port number given as a string. */
export const envPort = z.coerce.number().int().min(0).max(65_535);

export const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/**
 * A secret given as `NAME` or in the file `NAME_FILE` names (as container
 * secrets are mounted; a trailing newline is dropped), never both.
 */
export function secretSetting(name: string, value: string | undefined, file: string | undefined): string | undefined {
  if (value !== undefined && file !== undefined) throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  if (file === undefined) return value;
  try {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (error) {
    throw new ConfigError(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
}
