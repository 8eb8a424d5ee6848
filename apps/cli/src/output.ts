// What the commands print: tables for people, JSON for scripts (--json),
// both on standard output; messages for people on standard error, so that
// `--json` output can always be piped.

export interface Output {
  readonly json: boolean;
  /** A line of text for people (standard output). */
  line(text?: string): void;
  /** A note for people that is not the result (standard error): progress, hints. */
  note(text: string): void;
  /** The result as JSON when --json is given, else as people read it. */
  result(value: unknown, forPeople: () => void): void;
  table<T>(rows: readonly T[], columns: readonly Column<T>[]): void;
}

interface Column<T> {
  title: string;
  value(row: T): string | number | boolean | null | undefined;
}

export function createOutput(
  json: boolean,
  stdout: NodeJS.WritableStream = process.stdout,
  stderr: NodeJS.WritableStream = process.stderr,
): Output {
  // Everything printed passes here, so nothing the control plane relays (a
  // model name a caller chose, a prompt, an IdP's code) can move the cursor,
  // retitle the window or rewrite earlier lines of an auditor's terminal.
  const line = (text = "") => {
    stdout.write(`${safeText(text)}\n`);
  };
  return {
    json,
    line,
    note: (text) => {
      stderr.write(`${safeText(text)}\n`);
    },
    result(value, forPeople) {
      // JSON.stringify escapes C0 controls but not DEL and C1 (U+0080-U+009F, CSI among them).
      if (json) stdout.write(`${JSON.stringify(value, null, 2).replace(C1, unicodeEscape)}\n`);
      else forPeople();
    },
    table(rows, columns) {
      const cells = rows.map((row) => columns.map((column) => show(column.value(row))));
      const widths = columns.map((column, index) =>
        Math.max(column.title.length, ...cells.map((row) => (row[index] as string).length)),
      );
      const format = (values: readonly string[]) =>
        values
          .map((value, index) => (index === values.length - 1 ? value : value.padEnd(widths[index] as number)))
          .join("  ")
          .trimEnd();
      line(format(columns.map((column) => column.title.toUpperCase())));
      for (const row of cells) line(format(row));
    },
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
const CONTROL_EXCEPT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
const escaped = (char: string) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`;
const C1 = /[\u007f-\u009f]/g;
const unicodeEscape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** A cell: `-` for nothing, control characters shown escaped (a name cannot rewrite the terminal). */
function show(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined || value === "") return "-";
  return String(value).replace(CONTROL, escaped);
}

/** Text from the control plane printed to a terminal (bodies, replays): control characters but line breaks and tabs escaped. */
export const safeText = (value: string): string => value.replace(CONTROL_EXCEPT_LINES, escaped);
