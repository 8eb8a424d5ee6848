import { createHash } from "node:crypto";

/** Dimensions of every embedding the fixture returns. */
const EMBEDDING_DIMENSIONS = 8;

/**
 * A deterministic unit-length vector derived from the text's SHA-256, so the
 * same input always embeds the same way and different inputs (almost surely)
 * differ. Each component is rounded to float32 so the float and base64
 * encodings of one embedding carry exactly the same numbers.
 */
export function embeddingFor(text: string): number[] {
  const digest = createHash("sha256").update(text, "utf8").digest();
  const raw: number[] = [];
  for (let index = 0; index < EMBEDDING_DIMENSIONS; index += 1) {
    // 4 digest bytes per component, mapped onto [-1, 1].
    raw.push((digest.readUInt32LE(index * 4) / 0xffff_ffff) * 2 - 1);
  }
  const norm = Math.hypot(...raw) || 1;
  return raw.map((value) => Math.fround(value / norm));
}

/**
 * Base64 of the vector as little-endian float32, the format the OpenAI API
 * returns for `encoding_format: "base64"` (and which the `openai` SDK asks for
 * by default, decoding it itself).
 */
export function float32Base64(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, index) => {
    bytes.writeFloatLE(value, index * 4);
  });
  return bytes.toString("base64");
}
