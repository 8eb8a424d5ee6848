// Runs `modelgate` (bin/modelgate.mjs imports this file).
import { CommanderError } from "commander";
import { CliError, EXIT } from "./errors.js";
import { safeText } from "./output.js";
import { buildProgram } from "./program.js";

async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not failures; commander has printed the rest.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`modelgate: ${safeText(error.message)}\n`);
      for (const issue of error.issues) process.stderr.write(`  ${safeText(issue)}\n`);
      return error.exitCode;
    }
    process.stderr.write(`modelgate: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failure;
  }
}

process.exitCode = await main(process.argv);
