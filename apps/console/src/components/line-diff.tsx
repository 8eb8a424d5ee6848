// A line diff of two texts (longest common subsequence), for reviewing a
// policy change before it is saved. Policies are small documents; the table
// is capped so a pasted megabyte cannot freeze the page.
const MAX_CELLS = 4_000_000;

export type DiffLine = { kind: "same" | "added" | "removed"; text: string };

function diffLines(before: string, after: string): DiffLine[] | undefined {
  const a = before.split("\n");
  const b = after.split("\n");
  if (a.length * b.length > MAX_CELLS) return undefined;
  const width = b.length + 1;
  const lengths = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lengths[i * width + j] =
        a[i] === b[j]
          ? (lengths[(i + 1) * width + j + 1] as number) + 1
          : Math.max(lengths[(i + 1) * width + j] as number, lengths[i * width + j + 1] as number);
    }
  }
  const lines: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push({ kind: "same", text: a[i] as string });
      i++;
      j++;
    } else if (
      j < b.length &&
      (i >= a.length || (lengths[i * width + j + 1] as number) >= (lengths[(i + 1) * width + j] as number))
    ) {
      lines.push({ kind: "added", text: b[j] as string });
      j++;
    } else {
      lines.push({ kind: "removed", text: a[i] as string });
      i++;
    }
  }
  return lines;
}

export function LineDiff({ before, after }: { before: string; after: string }) {
  const lines = diffLines(before, after);
  if (!lines) return <p className="muted">The documents are too large to compare here.</p>;
  if (lines.every((line) => line.kind === "same")) return <p data-testid="no-changes">No changes.</p>;
  return (
    <pre className="diff" data-testid="diff">
      {lines.map((line, index) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: lines have no identity but their position
        <span key={index} className={`diff-${line.kind}`}>
          {line.kind === "added" ? "+ " : line.kind === "removed" ? "- " : "  "}
          {line.text}
          {"\n"}
        </span>
      ))}
    </pre>
  );
}
