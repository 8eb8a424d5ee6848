import { createHmac, type Hmac, hash } from "node:crypto";
import type { MaskingStyle } from "./profile.js";

/** A replacement for a value that is still arriving (a long secret in a stream). */
export interface OpenReplacement {
  /** What can be emitted as soon as the match is known. */
  readonly now: string;
  /** More of the value. */
  add(part: string): void;
  /** What to emit when the value has ended. */
  finish(): string;
}

/** Turns detected values into their replacement text. Replacements never contain the value. */
export interface Renderer {
  replace(name: string, keepsLastDigits: boolean, value: string): string;
  open(name: string): OpenReplacement;
}

/** Emitted at once; the rest of the value only needs to be dropped. */
function fixed(text: string): OpenReplacement {
  return { now: text, add() {}, finish: () => "" };
}

const labelRenderer: Renderer = {
  replace: (name) => `[${name}]`,
  open: (name) => fixed(`[${name}]`),
};

/** `[CREDIT_CARD ****1111]`: the last four digits, which receipts and support calls show anyway. */
const partialRenderer: Renderer = {
  replace(name, keepsLastDigits, value) {
    if (!keepsLastDigits) return `[${name}]`;
    const digits = value.replace(/[^0-9]/g, "");
    return digits.length >= 8 ? `[${name} ****${digits.slice(-4)}]` : `[${name}]`;
  },
  open: (name) => fixed(`[${name}]`),
};

/** Hex digits of the pseudonym: 4 would give two of 300 values the same one half the time. */
const PSEUDONYM_HEX = 8;

/**
 * `<EMAIL_3f9a61c0>`: the first hex digits of HMAC-SHA256(key, name + "\0" +
 * value), with a key that lives for one session. The same value gets the
 * same pseudonym within the session, so a reader can tell two people apart;
 * across sessions the pseudonyms cannot be linked, and without the key they
 * cannot be reversed by guessing values. Strings are hashed as UTF-8.
 */
function hashRenderer(key: Uint8Array): Renderer {
  // HMAC (RFC 2104) from two one-shot hashes: five times cheaper per value
  // than createHmac, which sets the key up again for every call.
  const block = Buffer.alloc(64);
  if (key.length > 64) hash("sha256", key, "buffer").copy(block);
  else block.set(key);
  const inner = block.map((byte) => byte ^ 0x36);
  const outer = block.map((byte) => byte ^ 0x5c);
  const pseudonym = (name: string, value: string) => {
    const digest = hash("sha256", Buffer.concat([inner, Buffer.from(`${name}\0${value}`)]), "buffer");
    return hash("sha256", Buffer.concat([outer, digest]), "hex").slice(0, PSEUDONYM_HEX);
  };
  const label = (name: string, hex: string) => `<${name}_${hex}>`;
  return {
    replace: (name, _keepsLastDigits, value) => label(name, pseudonym(name, value)),
    open(name) {
      // A value that arrives in parts (a long secret in a stream) is hashed as it comes.
      const hmac: Hmac = createHmac("sha256", key).update(name).update("\0");
      return {
        now: "",
        add: (part) => {
          hmac.update(part);
        },
        finish: () => label(name, hmac.digest("hex").slice(0, PSEUDONYM_HEX)),
      };
    },
  };
}

export function createRenderer(style: MaskingStyle, hashKey: Uint8Array | undefined): Renderer {
  switch (style) {
    case "label":
      return labelRenderer;
    case "partial":
      return partialRenderer;
    case "hash":
      if (hashKey === undefined) throw new Error("the hash style needs a hash key");
      return hashRenderer(hashKey);
  }
}
