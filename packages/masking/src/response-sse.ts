import { COMPLETES_ALL, type Completion, type JsonFrame } from "./response-documents.js";
import { isResponsesClosingEvent } from "./response-fields.js";
import { elementName, isContainer, type JsonDocument } from "./response-selector.js";

/**
 * Cuts a decoded event stream into events, each with the blank line that
 * ends it. Lines may end in LF, CRLF or CR (the SSE grammar allows all
 * three); a CR at the very end of the text is not judged until the next
 * character shows whether an LF follows.
 */
export class SseSplitter {
  #buffer = "";
  /** Where the line being read starts, and where to resume looking for its end. */
  #lineStart = 0;
  #scan = 0;

  /** Adds text; returns the events it completes, exactly as received. */
  push(text: string): string[] {
    const buffer = this.#buffer + text;
    const events: string[] = [];
    let eventStart = 0;
    let resume = buffer.length;
    const terminator = /[\r\n]/g;
    terminator.lastIndex = this.#scan;
    for (let found = terminator.exec(buffer); found; found = terminator.exec(buffer)) {
      const at = found.index;
      if (buffer[at] === "\r" && at + 1 === buffer.length) {
        resume = at;
        break;
      }
      const end = buffer[at] === "\r" && buffer[at + 1] === "\n" ? at + 2 : at + 1;
      // An empty line ends the event.
      if (at === this.#lineStart) {
        events.push(buffer.slice(eventStart, end));
        eventStart = end;
      }
      this.#lineStart = end;
      terminator.lastIndex = end;
    }
    this.#buffer = buffer.slice(eventStart);
    this.#lineStart -= eventStart;
    this.#scan = resume - eventStart;
    return events;
  }

  /** What has not been completed by a blank line. */
  get pending(): string {
    return this.#buffer;
  }
}

/** One event: its lines (with their line endings) and its joined `data`. */
class SseEvent implements JsonFrame {
  readonly raw: string;
  readonly json: string;
  readonly #lines: readonly { text: string; end: string }[];

  constructor(raw: string, lines: readonly { text: string; end: string }[], data: string) {
    this.raw = raw;
    this.#lines = lines;
    this.json = data;
  }

  /**
   * The event with its data replaced by one `data:` line (serialised JSON
   * has no line breaks), written where the first data line was and with
   * its spacing; `event:`, `id:` and comment lines stay as they were.
   */
  render(json: string): string {
    let out = "";
    let written = false;
    for (const line of this.#lines) {
      if (!isDataLine(line.text)) {
        out += line.text + line.end;
      } else if (!written) {
        out += `${line.text.startsWith("data: ") ? "data: " : "data:"}${json}${line.end}`;
        written = true;
      }
    }
    return out;
  }
}

function isDataLine(line: string): boolean {
  return line === "data" || line.startsWith("data:");
}

/** Parses one complete event; `data` is undefined when it has no data line. */
export function parseSseEvent(raw: string): { event: SseEvent; data: string | undefined } {
  const lines: { text: string; end: string }[] = [];
  const data: string[] = [];
  const pattern = /([^\r\n]*)(\r\n|\r|\n|$)/g;
  for (let found = pattern.exec(raw); found; found = pattern.exec(raw)) {
    const [whole, text = "", end = ""] = found;
    if (whole === "") break;
    lines.push({ text, end });
    if (isDataLine(text)) {
      // The field's value is what follows the colon, less one leading space.
      const value = text.slice(5);
      data.push(value.startsWith(" ") ? value.slice(1) : value);
    }
  }
  const joined = data.length === 0 ? undefined : data.join("\n");
  return { event: new SseEvent(raw, lines, joined ?? ""), data: joined };
}

/**
 * The line ending the runtime uses, to complete an event it left
 * unterminated when the response ended.
 */
export function terminateEvent(pending: string): string {
  const end = pending.includes("\r\n") ? "\r\n" : "\n";
  return pending.endsWith("\n") || pending.endsWith("\r") ? pending + end : pending + end + end;
}

/**
 * Events of Anthropic's Messages stream that end the text before them: a
 * content block's end (the next block streams into the same `delta.text`),
 * and the message's.
 */
const ENDING_EVENT_TYPES: ReadonlySet<string> = new Set(["content_block_stop", "message_delta", "message_stop"]);

/**
 * Which channels an SSE event ends: TGI's last event (the one carrying the
 * whole `generated_text`) ends all of them; an OpenAI chunk ends each choice
 * whose `finish_reason` it sets, so held text reaches the client before it
 * learns the choice is finished.
 */
export function sseCompletion(document: JsonDocument): Completion | undefined {
  const root = document[0];
  if (!isContainer(root) || Array.isArray(root)) return undefined;
  if (typeof root.generated_text === "string") return COMPLETES_ALL;
  if (typeof root.type === "string" && ENDING_EVENT_TYPES.has(root.type)) return COMPLETES_ALL;
  if (isResponsesClosingEvent(root)) return COMPLETES_ALL;
  const choices = root.choices;
  if (!Array.isArray(choices)) return undefined;
  const prefixes: string[] = [];
  for (const [position, choice] of choices.entries()) {
    if (isContainer(choice) && !Array.isArray(choice) && typeof choice.finish_reason === "string") {
      prefixes.push(`choices[${elementName(choices, position)}].`);
    }
  }
  if (prefixes.length === 0) return undefined;
  return (channel) => prefixes.some((prefix) => channel.startsWith(prefix));
}
