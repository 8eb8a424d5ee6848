// Exit codes scripts can rely on (docs/cli.md), and the one error type the
// commands throw: it carries the code and a message that says what to do next.

export const EXIT = {
  ok: 0,
  /** The control plane could not be reached, or failed (5xx), or anything unexpected. */
  failure: 1,
  /** The command line or its input is wrong (bad option, invalid file, 400 from the API). */
  usage: 2,
  /** Not logged in, the credential is refused (401) or lacks the role (403). */
  auth: 3,
  /** What was named does not exist (404). */
  notFound: 4,
  /** The current state forbids it: a conflict, an approval already decided or expired (409). */
  conflict: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: ExitCode;
  /** Field problems the control plane reported, each `path: message`. */
  readonly issues: readonly string[];

  /** The control plane's HTTP status, when it answered with an error. */
  readonly status: number | undefined;

  constructor(message: string, exitCode: ExitCode = EXIT.failure, issues: readonly string[] = [], status?: number) {
    super(message);
    this.exitCode = exitCode;
    this.issues = issues;
    this.status = status;
  }
}
