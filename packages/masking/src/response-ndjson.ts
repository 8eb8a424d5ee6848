import { COMPLETES_ALL, type Completion, type JsonFrame } from "./response-documents.js";
import { isContainer, type JsonDocument } from "./response-selector.js";

/** Cuts decoded NDJSON into lines, each with its line ending (LF or CRLF). */
export class NdjsonSplitter {
  #buffer = "";

  /** Adds text; returns the lines it completes, exactly as received. */
  push(text: string): string[] {
    const buffer = this.#buffer + text;
    const lines: string[] = [];
    let start = 0;
    for (let end = buffer.indexOf("\n"); end !== -1; end = buffer.indexOf("\n", start)) {
      lines.push(buffer.slice(start, end + 1));
      start = end + 1;
    }
    this.#buffer = buffer.slice(start);
    return lines;
  }

  /** A last line the runtime did not end with a newline. */
  get pending(): string {
    return this.#buffer;
  }
}

/** One line: its JSON and its line ending, kept when the JSON is replaced. */
export class NdjsonLine implements JsonFrame {
  readonly raw: string;
  readonly json: string;
  readonly #end: string;

  constructor(raw: string) {
    this.raw = raw;
    this.#end = raw.endsWith("\r\n") ? "\r\n" : raw.endsWith("\n") ? "\n" : "";
    this.json = raw.slice(0, raw.length - this.#end.length);
  }

  render(json: string): string {
    return json + this.#end;
  }
}

/** Ollama's last object (`"done": true`) ends every channel. */
export function ndjsonCompletion(document: JsonDocument): Completion | undefined {
  const root = document[0];
  return isContainer(root) && !Array.isArray(root) && root.done === true ? COMPLETES_ALL : undefined;
}
