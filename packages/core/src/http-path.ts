/**
 * Turns the path a client asked for into a path on the agent's one runtime.
 * The agent sends requests with undici's separate `origin` and `path`, so the
 * host and port can never change; what this guards is the runtime's own
 * namespace: a runtime mounted under a base path (`http://host/ollama/`) must
 * not be escaped with `..`, and nothing ambiguous reaches the runtime's
 * router, whose decoding rules may differ from ours.
 */
export class UnsafePathError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "UnsafePathError";
  }
}

const MAX_PATH_LENGTH = 8192;
// Control characters, space, backslash and the characters URL parsers treat
// differently; `%` is checked separately as part of an escape.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
const FORBIDDEN_CHARACTERS = /[\u0000-\u0020\u007f\\"<>^`{|}]/;
// Encoded, most characters are legitimate (`%20` in a model name); control
// characters never are, and some routers act on a decoded CR/LF or NUL.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
const FORBIDDEN_DECODED = /[\u0000-\u001f\u007f]/;
const HAS_ESCAPE = /%[0-9a-fA-F]{2}/;

/**
 * Joins `requestPath` (path and optional query, starting with `/`) under the
 * runtime's base path. Throws UnsafePathError for anything that is not a
 * plain, already-normalised path: dot segments, encoded dots or slashes,
 * doubled slashes, backslashes, absolute URLs and control characters.
 */
export function resolveRuntimePath(basePath: string, requestPath: string): string {
  if (requestPath.length > MAX_PATH_LENGTH) throw new UnsafePathError("path too long");
  if (!requestPath.startsWith("/")) throw new UnsafePathError("path must start with /");
  const queryStart = requestPath.indexOf("?");
  const path = queryStart === -1 ? requestPath : requestPath.slice(0, queryStart);
  const query = queryStart === -1 ? "" : requestPath.slice(queryStart);
  if (requestPath.includes("#")) throw new UnsafePathError("fragments are not allowed");
  if (FORBIDDEN_CHARACTERS.test(requestPath)) throw new UnsafePathError("path contains a forbidden character");
  if (/%(?![0-9a-fA-F]{2})/.test(requestPath)) throw new UnsafePathError("path contains a malformed escape");

  const segments = path.slice(1).split("/");
  for (const [index, segment] of segments.entries()) {
    // An empty segment is only allowed as a trailing slash: `//host` is an
    // absolute URL to some parsers.
    if (segment === "" && index !== segments.length - 1) throw new UnsafePathError("empty path segment");
    const decoded = decodeFully(segment);
    if (decoded === "." || decoded === "..") throw new UnsafePathError("dot segments are not allowed");
    if (/[/\\]/.test(decoded)) throw new UnsafePathError("encoded slashes are not allowed");
    if (FORBIDDEN_DECODED.test(decoded)) throw new UnsafePathError("path contains an encoded control character");
  }
  const base = basePath.endsWith("/") ? basePath.slice(0, -1) : basePath;
  return `${base}${path}${query}`;
}

/** Decodes until stable, so `%252e%252e` is seen as `..` too. */
function decodeFully(segment: string): string {
  let current = segment;
  for (let round = 0; round < 4; round++) {
    if (!HAS_ESCAPE.test(current)) return current;
    try {
      current = decodeURIComponent(current);
    } catch {
      throw new UnsafePathError("path contains an undecodable escape");
    }
  }
  if (HAS_ESCAPE.test(current)) throw new UnsafePathError("path is encoded too many times");
  return current;
}
