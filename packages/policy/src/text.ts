const MAX_QUOTED = 200;

/**
 * A value quoted for a reason. JSON quoting escapes quotes and control
 * characters; long values (a model name is the caller's to choose) are
 * shortened so a reason stays a sentence.
 */
export function quote(value: string): string {
  const short = value.length > MAX_QUOTED ? `${value.slice(0, MAX_QUOTED)}…` : value;
  return JSON.stringify(short);
}

/** "a", "a and b", "a, b and c". */
export function listing(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}
