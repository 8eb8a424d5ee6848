import { matchForm } from "@modelgate/masking";

/**
 * Prompt rules are matched against the prompt in its normal form (see
 * @modelgate/masking's normalizeForMatching): accents and invisible
 * characters gone, look-alike letters read as Latin ones, white space runs
 * as one space. A pattern's literal characters must be read the same way,
 * or a rule written "contraseña" or "пароль" could never match: "ñ" reads
 * "n" in the prompt, and Cyrillic "а", "о", "р" read as Latin letters.
 *
 * So each literal character of a pattern (also one written as a \u or \x
 * escape) is replaced by its form; a run of literal white space by one
 * space (and \t, \n, \r, \f, \v, which read as a space inside a field,
 * too). Inside a character class, a single literal member is replaced by
 * its form when that is one character; range ends, property escapes (\p{…})
 * and class escapes (\d, \s, \w) are left as written: a range means the
 * code points it spans, which normalisation cannot translate. Everything
 * else (groups, quantifiers, anchors, escapes of syntax characters) is
 * copied. A pattern in ASCII without white space other than single spaces
 * is returned as it is.
 */
export function normalizeRulePattern(pattern: string): string {
  if (/^[\u0020-\u007e]*$/.test(pattern) && !pattern.includes("  ") && !/\\[tnrfvux]/.test(pattern)) return pattern;
  return new PatternWriter(pattern).write();
}

const SYNTAX = new Set([..."^$\\.*+?()[]{}|/"]);
const CLASS_SYNTAX = new Set([..."\\]^-"]);

/** A literal character's form as pattern source: syntax characters escaped, several characters grouped. */
function literal(form: string): string {
  if (form === "") return "(?:)";
  let source = "";
  for (const char of form) source += SYNTAX.has(char) ? `\\${char}` : char;
  return [...form].length === 1 ? source : `(?:${source})`;
}

class PatternWriter {
  readonly #source: string;
  #index = 0;
  #out = "";

  constructor(source: string) {
    this.#source = source;
  }

  write(): string {
    const source = this.#source;
    while (this.#index < source.length) {
      const char = source[this.#index] as string;
      if (char === "\\") this.#escape();
      else if (char === "[") this.#class();
      else if (char === "(") this.#group();
      else if (char === "{") this.#copyThrough("}");
      else if ("^$.*+?)|".includes(char)) this.#copy(1);
      else this.#literalRun();
    }
    return this.#out;
  }

  #copy(length: number): void {
    this.#out += this.#source.slice(this.#index, this.#index + length);
    this.#index += length;
  }

  #copyThrough(end: string): void {
    const found = this.#source.indexOf(end, this.#index + 1);
    this.#copy(found === -1 ? this.#source.length - this.#index : found + 1 - this.#index);
  }

  /** `(`, and a group's opener such as `(?:`, `(?<name>`, `(?<=`, `(?i:` copied whole. */
  #group(): void {
    const source = this.#source;
    const next = source[this.#index + 2];
    const after = source[this.#index + 3];
    if (source[this.#index + 1] !== "?") this.#copy(1);
    else if (next === "<" && after !== "=" && after !== "!") this.#copyThrough(">");
    else if (next === ":" || next === "=" || next === "!") this.#copy(3);
    else if (next === "<") this.#copy(4);
    // Modifiers, (?i:…) or (?-i:…): through the colon.
    else this.#copyThrough(":");
  }

  /** A code point written as \uXXXX, \u{…}, a surrogate pair of \u escapes, or \xHH; undefined for other escapes. */
  #escapedCodePoint(): { code: number; length: number } | undefined {
    const source = this.#source;
    const at = this.#index;
    const kind = source[at + 1];
    if (kind === "x" && /^[0-9a-fA-F]{2}$/.test(source.slice(at + 2, at + 4))) {
      return { code: Number.parseInt(source.slice(at + 2, at + 4), 16), length: 4 };
    }
    if (kind !== "u") return undefined;
    if (source[at + 2] === "{") {
      const end = source.indexOf("}", at + 3);
      return end === -1 ? undefined : { code: Number.parseInt(source.slice(at + 3, end), 16), length: end + 1 - at };
    }
    const hex = source.slice(at + 2, at + 6);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) return undefined;
    const code = Number.parseInt(hex, 16);
    const low = source.slice(at + 6, at + 12);
    if (code >= 0xd800 && code <= 0xdbff && /^\\u[dD][c-fC-F][0-9a-fA-F]{2}$/.test(low)) {
      const second = Number.parseInt(low.slice(2), 16);
      return { code: (code - 0xd800) * 0x400 + (second - 0xdc00) + 0x10000, length: 12 };
    }
    return { code, length: 6 };
  }

  #escape(): void {
    const source = this.#source;
    const escaped = this.#escapedCodePoint();
    if (escaped !== undefined) {
      this.#out += literal(matchForm(escaped.code));
      this.#index += escaped.length;
      return;
    }
    const kind = source[this.#index + 1];
    if (kind === "p" || kind === "P" || kind === "k") this.#copyThrough(kind === "k" ? ">" : "}");
    else if (kind === "c") this.#copy(3);
    else if (kind !== undefined && "tnrfv".includes(kind)) {
      // Tabs and line breaks inside a field read as a space.
      this.#out += " ";
      this.#index += 2;
    } else {
      // \d, \s, \b, a backreference, an escaped syntax character: as written.
      this.#copy(2);
    }
  }

  /** Literal characters up to the next syntax character; white space runs as one space. */
  #literalRun(): void {
    const source = this.#source;
    let spaced = false;
    while (this.#index < source.length) {
      const code = source.codePointAt(this.#index) ?? 0;
      const char = String.fromCodePoint(code);
      if (SYNTAX.has(char)) break;
      const form = matchForm(code);
      // A space that a quantifier follows keeps its own atom: "a +b" stays.
      const quantified = "*+?{".includes(source[this.#index + char.length] ?? "");
      if (form === " " && !quantified) {
        if (!spaced) this.#out += " ";
        spaced = true;
      } else {
        this.#out += literal(form);
        spaced = false;
      }
      this.#index += char.length;
    }
  }

  #class(): void {
    const source = this.#source;
    this.#copy(source[this.#index + 1] === "^" ? 2 : 1);
    while (this.#index < source.length && source[this.#index] !== "]") {
      if (source[this.#index] === "\\") {
        const escaped = this.#escapedCodePoint();
        if (escaped !== undefined && source[this.#index + escaped.length] !== "-" && !this.#rangeEnd()) {
          this.#out += classMember(matchForm(escaped.code), source.slice(this.#index, this.#index + escaped.length));
          this.#index += escaped.length;
        } else if (escaped !== undefined) {
          this.#copy(escaped.length);
        } else {
          const kind = source[this.#index + 1];
          if (kind === "p" || kind === "P") this.#copyThrough("}");
          else if (kind === "c") this.#copy(3);
          else this.#copy(2);
        }
        continue;
      }
      const code = source.codePointAt(this.#index) ?? 0;
      const char = String.fromCodePoint(code);
      const inRange = char !== "-" && (source[this.#index + char.length] === "-" || this.#rangeEnd());
      if (char === "-" || inRange) this.#copy(char.length);
      else {
        this.#out += classMember(matchForm(code), char);
        this.#index += char.length;
      }
    }
    this.#copy(1);
  }

  /** Whether the character at the current position ends a range (a "-" before it that is not the class's first). */
  #rangeEnd(): boolean {
    const before = this.#out.at(-1);
    const twoBefore = this.#out.at(-2);
    return before === "-" && twoBefore !== "[" && twoBefore !== "^" && twoBefore !== "\\";
  }
}

/** A class member's form when it is one character (escaped where the class needs it), else the member as written. */
function classMember(form: string, written: string): string {
  if ([...form].length !== 1) return written;
  return CLASS_SYNTAX.has(form) ? `\\${form}` : form;
}
