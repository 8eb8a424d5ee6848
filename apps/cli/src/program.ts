// The `modelgate` command line: every command and its options, built on
// commander. main.ts runs it; tests run the built process.
import { Command } from "commander";
import { registerAudit } from "./commands/audit.js";
import { registerAuth } from "./commands/auth.js";
import { registerPolicies } from "./commands/policies.js";
import { registerResources } from "./commands/resources.js";

const VERSION = "0.1.0";

export function buildProgram(): Command {
  const program = new Command("modelgate")
    .description("Operate a modelgate control plane: connections, agents, keys, policies, sessions, approvals")
    .version(VERSION)
    .option("--url <url>", "the control plane's URL (default: the one `modelgate login` saved, or MODELGATE_URL)")
    .option("--json", "print results as JSON, for scripts")
    .showHelpAfterError("(add --help for usage and examples)")
    .addHelpText(
      "after",
      `
Credentials: \`modelgate login\` saves them (0600) in $MODELGATE_CONFIG_DIR, else $XDG_CONFIG_HOME/modelgate,
else ~/.config/modelgate; MODELGATE_URL and MODELGATE_TOKEN take precedence, for scripts.

Exit codes: 0 done, 1 failed (unreachable, server error, chain broken), 2 bad usage or input,
3 not logged in or not allowed, 4 not found, 5 conflicts with the current state.`,
    );
  registerAuth(program);
  registerResources(program);
  registerPolicies(program);
  registerAudit(program);
  // Every command reports its usage errors the same way and exits 2 (see main.ts).
  const exitOverride = (command: Command) => {
    command.exitOverride();
    for (const child of command.commands) exitOverride(child);
  };
  exitOverride(program);
  return program;
}
