// What every command gets: the output, and the API client for the control
// plane the global options and saved credentials point at.
import type { Command } from "commander";
import { type ApiClient, createApiClient } from "./api.js";
import { loadCredentials } from "./credentials.js";
import { CliError, EXIT } from "./errors.js";
import { createOutput, type Output } from "./output.js";

interface GlobalOptions {
  url?: string;
  json?: boolean;
}

export interface Context {
  out: Output;
  /** The client for the logged-in control plane; fails with "not logged in" when there is none. */
  api(): Promise<ApiClient>;
  globals: GlobalOptions;
}

export function contextOf(command: Command): Context {
  const globals = command.optsWithGlobals<GlobalOptions>();
  return {
    globals,
    out: createOutput(Boolean(globals.json)),
    async api() {
      const { url, token } = await loadCredentials(globals.url);
      return createApiClient(url, token);
    },
  };
}

/** Every item of a paged listing, following `nextCursor` (at most `max`). */
export async function allPages<T>(
  api: ApiClient,
  path: string,
  query: Record<string, string | number | undefined> = {},
  max = 10_000,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.get<{ items: T[]; nextCursor: string | null }>(path, { ...query, limit: 500, cursor });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && items.length < max);
  return items;
}

/** Examples under a command's --help. */
export function examples(command: Command, lines: readonly string[]): Command {
  return command.addHelpText("after", `\nExamples:\n${lines.map((line) => `  $ ${line}`).join("\n")}\n`);
}

/** An option that may be given several times (`--group a --group b`). */
export const repeatable = (value: string, previous: string[] = []): string[] => [...previous, value];

/** An option parser for a whole number within bounds; anything else is a usage error naming the option. */
export function wholeNumber(option: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < min || number > max) {
      throw new CliError(`${option} must be a whole number from ${min} to ${max}`, EXIT.usage);
    }
    return number;
  };
}
