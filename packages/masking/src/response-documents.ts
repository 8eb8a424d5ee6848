import { type MaskCounts, type Masker, MaskingError, type MaskingStream } from "./masker.js";
import { repeatsStreamedText } from "./response-fields.js";
import { addCounts, parseJson, replaceValue, serializeJson } from "./response-json.js";
import {
  type FieldSelector,
  forEachStringLeaf,
  isContainer,
  type JsonDocument,
  type PathMatch,
} from "./response-selector.js";

/** What the adapters use of the engine: a Masker, or a stand-in in tests. */
export type TextMasker = Pick<Masker, "maskText" | "createStream">;

/** A JSON document in its stream framing: one SSE event or one NDJSON line. */
export interface JsonFrame {
  /** The frame exactly as received. */
  readonly raw: string;
  /** The JSON text it carries. */
  readonly json: string;
  /** The same frame carrying `json` instead. */
  render(json: string): string;
}

/** Whether a document ends the text of a channel (named by its concrete path). */
export type Completion = (channel: string) => boolean;

export const COMPLETES_ALL: Completion = () => true;

/**
 * Distinct pieces of text one response may stream. OpenAI names choices and
 * tool calls by small integers, so a real response has a handful; the cap
 * keeps a runaway one from holding a stream per value.
 */
const MAX_CHANNELS = 1024;

interface Channel {
  readonly stream: MaskingStream;
  /** The last frame that carried this channel: the model for a frame that flushes its tail. */
  template: JsonFrame;
}

/**
 * Masks the JSON documents of one streamed response (SSE events, NDJSON
 * lines). Each selected string is one piece of a longer text, so it goes
 * through a masking stream kept per concrete path (a "channel"): a value
 * split across events is still found, and each event carries what its
 * channel could release when the event arrived. Strings inside a selected
 * object (Ollama's tool-call arguments) arrive whole and are masked whole.
 *
 * Text a channel still holds when its piece of the response ends goes out
 * in the document that ends it, when that document carries the channel
 * (TGI's last token, Ollama's `done` line, a last OpenAI chunk with both
 * text and `finish_reason`); otherwise in a copy of the last document that
 * carried the channel, sent just before the ending one, with the held text
 * in that field and every other masked field emptied. Either way each
 * frame stays a well-formed document of the runtime's own protocol.
 */
export class DocumentStreamMasker {
  readonly #masker: TextMasker;
  readonly #selector: FieldSelector;
  readonly #channels = new Map<string, Channel>();
  /** Counts of retired channels and of values masked whole. */
  readonly #counts: MaskCounts = {};
  /** Whether text has gone through a channel: a cumulative field then repeats it. */
  #streamed = false;

  constructor(masker: TextMasker, selector: FieldSelector) {
    this.#masker = masker;
    this.#selector = selector;
  }

  get counts(): MaskCounts {
    const total = { ...this.#counts };
    for (const channel of this.#channels.values()) addCounts(total, channel.stream.counts);
    return total;
  }

  /**
   * The text to send for one document: copies that flush channels it ends
   * but does not carry, then the document itself (as received when nothing
   * in it changed).
   */
  mask(frame: JsonFrame, document: JsonDocument, completes?: Completion): string {
    const carried: { match: PathMatch; text: string }[] = [];
    const cumulative: PathMatch[] = [];
    let changed = false;
    for (const match of this.#selector.matches(document)) {
      if (typeof match.value === "string") {
        if (repeatsStreamedText(document[0], match.name)) {
          cumulative.push(match);
        } else {
          carried.push({ match, text: this.#channel(match.name, frame).stream.push(match.value) });
        }
      } else if (isContainer(match.value)) {
        changed = maskStringLeaves(this.#masker, match.value, this.#counts) || changed;
      }
    }
    for (const match of cumulative) {
      // After streamed pieces the whole text repeats them: mask it, but count it once.
      changed = maskWholeValue(this.#masker, match, this.#streamed ? undefined : this.#counts) || changed;
    }
    let before = "";
    if (completes) {
      for (const [name, channel] of this.#channels) {
        if (!completes(name)) continue;
        const tail = this.#retire(name, channel);
        if (tail === "") continue;
        const here = carried.findLast((entry) => entry.match.name === name);
        if (here) here.text += tail;
        else before += this.#flushFrame(name, channel.template, tail);
      }
    }
    for (const { match, text } of carried) {
      if (text === match.value) continue;
      replaceValue(match.parent, match.key, text);
      changed = true;
    }
    return before + (changed ? frame.render(serializeJson(document)) : frame.raw);
  }

  /** Ends every channel; frames carrying what they still held (before `[DONE]`, or at the end). */
  flush(): string {
    let out = "";
    for (const [name, channel] of this.#channels) {
      const tail = this.#retire(name, channel);
      if (tail !== "") out += this.#flushFrame(name, channel.template, tail);
    }
    return out;
  }

  #channel(name: string, frame: JsonFrame): Channel {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      if (this.#channels.size >= MAX_CHANNELS) {
        throw new MaskingError(`a response streamed more than ${MAX_CHANNELS} separate texts`);
      }
      channel = { stream: this.#masker.createStream(), template: frame };
      this.#channels.set(name, channel);
      this.#streamed = true;
    }
    channel.template = frame;
    return channel;
  }

  /** Ends a channel: its held text, its counts kept. */
  #retire(name: string, channel: Channel): string {
    const tail = channel.stream.end();
    addCounts(this.#counts, channel.stream.counts);
    this.#channels.delete(name);
    return tail;
  }

  /**
   * A copy of `template` (parsed again from its text, so numbers keep their
   * source) with `tail` in the channel's field and every other selected
   * string emptied, so that nothing reaches the client twice. Selected
   * objects and cumulative fields are masked again, without counting.
   */
  #flushFrame(name: string, template: JsonFrame, tail: string): string {
    const document = parseJson(template.json, "a response event");
    const matches = this.#selector.matches(document);
    const target = matches.findLast((match) => match.name === name && typeof match.value === "string");
    for (const match of matches) {
      if (match === target) replaceValue(match.parent, match.key, tail);
      else if (isContainer(match.value)) maskStringLeaves(this.#masker, match.value, undefined);
      else if (typeof match.value !== "string") continue;
      else if (repeatsStreamedText(document[0], match.name)) maskWholeValue(this.#masker, match, undefined);
      else replaceValue(match.parent, match.key, "");
    }
    return template.render(serializeJson(document));
  }
}

/** Masks one selected string whole; adds to `counts` when given. Whether it changed. */
export function maskWholeValue(masker: TextMasker, match: PathMatch, counts: MaskCounts | undefined): boolean {
  const value = match.value as string;
  const masked = masker.maskText(value);
  if (counts) addCounts(counts, masked.counts);
  if (masked.text === value) return false;
  replaceValue(match.parent, match.key, masked.text);
  return true;
}

/** Masks every string inside an object or array, each whole. Whether any changed. */
export function maskStringLeaves(
  masker: TextMasker,
  value: Record<string, unknown> | unknown[],
  counts: MaskCounts | undefined,
): boolean {
  let changed = false;
  forEachStringLeaf(value, (text, replace) => {
    const masked = masker.maskText(text);
    if (counts) addCounts(counts, masked.counts);
    if (masked.text !== text) {
      replace(masked.text);
      changed = true;
    }
  });
  return changed;
}
