import type { FieldPath, PathSegment } from "./json-path.js";

const { isRawJSON } = JSON as unknown as { isRawJSON?: (value: unknown) => boolean };

/**
 * True for a JSON object or array as JSON.parse builds it; false for the
 * frozen wrappers `JSON.rawJSON` makes for numbers whose text must survive.
 */
export function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === "object" && value !== null && isRawJSON?.(value) !== true;
}

/**
 * A parsed document in a one-element holder, so that a document which is a
 * bare string can itself be replaced.
 */
export type JsonDocument = [root: unknown];

/** One value a path selects in a document. */
export interface PathMatch {
  /** The object or array holding the value, and the value's key or position in it. */
  readonly parent: Record<string, unknown> | unknown[];
  readonly key: string | number;
  readonly value: unknown;
  /**
   * The concrete path, e.g. `choices[0].delta.tool_calls[1].function.arguments`.
   * An array element that carries an integer `index` property is named by it
   * rather than by its position: OpenAI streams name choices and tool calls
   * that way (a chunk with `choices: [{ index: 1, … }]` continues choice 1),
   * so the name follows one piece of text across events.
   */
  readonly name: string;
}

/** How a concrete path names an array element: its `index` property when it has one, else its position. */
export function elementName(array: readonly unknown[], position: number): number {
  const element = array[position];
  if (isContainer(element) && !Array.isArray(element)) {
    const index = element.index;
    if (typeof index === "number" && Number.isSafeInteger(index) && index >= 0) return index;
  }
  return position;
}

/** The paths as one tree: a document is walked once, however many paths share a prefix. */
interface PathNode {
  readonly keys: Map<string, PathNode>;
  readonly indexes: Map<number, PathNode>;
  any: PathNode | undefined;
  /** A path ends here. */
  selected: boolean;
}

const newNode = (): PathNode => ({ keys: new Map(), indexes: new Map(), any: undefined, selected: false });

function childFor(node: PathNode, segment: PathSegment): PathNode {
  if (segment.kind === "any") {
    node.any ??= newNode();
    return node.any;
  }
  const children: Map<string | number, PathNode> = segment.kind === "key" ? node.keys : node.indexes;
  const key = segment.kind === "key" ? segment.name : segment.index;
  let child = children.get(key);
  if (child === undefined) {
    child = newNode();
    children.set(key, child);
  }
  return child;
}

/** Whether some array element can be reached twice, by `[*]` and by `[N]`. */
function overlaps(node: PathNode): boolean {
  if (node.any && node.indexes.size > 0) return true;
  const children = [...node.keys.values(), ...node.indexes.values(), ...(node.any ? [node.any] : [])];
  return children.some(overlaps);
}

/**
 * Finds the values a set of field paths selects in a document. With no
 * paths, every string in the document is selected: the safe reading of
 * "mask this response" when no field was named.
 */
export class FieldSelector {
  readonly #root: PathNode | undefined;
  readonly #overlapping: boolean;

  constructor(paths: readonly FieldPath[]) {
    if (paths.length === 0) {
      this.#root = undefined;
      this.#overlapping = false;
      return;
    }
    const root = newNode();
    for (const path of paths) {
      let node = root;
      for (const segment of path.segments) node = childFor(node, segment);
      node.selected = true;
    }
    this.#root = root;
    this.#overlapping = overlaps(root);
  }

  /** The selected values, each once even when two paths select it. */
  matches(document: JsonDocument): PathMatch[] {
    const matches: PathMatch[] = [];
    const root = document[0];
    if (this.#root === undefined) {
      if (typeof root === "string") matches.push({ parent: document, key: 0, value: root, name: "" });
      else collectStrings(root, "", matches);
      return matches;
    }
    walk(this.#root, root, "", matches);
    return this.#overlapping ? unique(matches) : matches;
  }
}

function walk(node: PathNode, value: unknown, name: string, matches: PathMatch[]): void {
  if (!isContainer(value)) return;
  if (Array.isArray(value)) {
    if (node.any) {
      for (let position = 0; position < value.length; position += 1) {
        step(node.any, value, position, `${name}[${elementName(value, position)}]`, matches);
      }
    }
    for (const [index, child] of node.indexes) {
      if (index < value.length) step(child, value, index, `${name}[${elementName(value, index)}]`, matches);
    }
    return;
  }
  for (const [key, child] of node.keys) {
    // Own properties only: a path must never reach `constructor` or a prototype.
    if (Object.hasOwn(value, key)) step(child, value, key, name === "" ? key : `${name}.${key}`, matches);
  }
}

function step(
  node: PathNode,
  parent: Record<string, unknown> | unknown[],
  key: string | number,
  name: string,
  matches: PathMatch[],
): void {
  const value = (parent as Record<string | number, unknown>)[key];
  // A selected value is masked with everything inside it: a longer path
  // below it has nothing left to add.
  if (node.selected) matches.push({ parent, key, value, name });
  else walk(node, value, name, matches);
}

function unique(matches: readonly PathMatch[]): PathMatch[] {
  const seen = new Map<object, Set<string | number>>();
  return matches.filter((match) => {
    const keys = seen.get(match.parent) ?? new Set<string | number>();
    if (keys.has(match.key)) return false;
    keys.add(match.key);
    seen.set(match.parent, keys);
    return true;
  });
}

function collectStrings(node: unknown, name: string, matches: PathMatch[]): void {
  if (!isContainer(node)) return;
  if (Array.isArray(node)) {
    for (const [position, value] of node.entries()) {
      const childName = `${name}[${elementName(node, position)}]`;
      if (typeof value === "string") matches.push({ parent: node, key: position, value, name: childName });
      else collectStrings(value, childName, matches);
    }
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    const childName = name === "" ? key : `${name}.${key}`;
    if (typeof value === "string") matches.push({ parent: node, key, value, name: childName });
    else collectStrings(value, childName, matches);
  }
}

/**
 * Every string inside `value` (an object or array), with a function that
 * replaces it. Object keys are left alone: they are the document's structure.
 */
export function forEachStringLeaf(
  value: Record<string, unknown> | unknown[],
  visit: (text: string, replace: (next: string) => void) => void,
): void {
  const record = value as Record<string | number, unknown>;
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, position) => position) : Object.keys(value);
  for (const key of keys) {
    const child = record[key];
    if (typeof child === "string") {
      visit(child, (next) => {
        record[key] = next;
      });
    } else if (isContainer(child)) {
      forEachStringLeaf(child, visit);
    }
  }
}
