/** Where sign-in lands when it was given nowhere (or somewhere it may not go). */
const CONSOLE_HOME = "/console/";

const MAX_RETURN_TO_LENGTH = 2048;
const PLACEHOLDER_ORIGIN = "http://console.invalid";

/**
 * A `returnTo` the console may send the browser to after sign-in: a path on
 * this origin under /console, normalised (so `/console/../api` is not one).
 * Anything else (absolute URLs, `//host`, backslashes, other paths) becomes
 * the console's home: an open redirect would hand a signed-in user to a
 * phishing page that looks like the next step.
 */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== "string" || value.length > MAX_RETURN_TO_LENGTH) return CONSOLE_HOME;
  // Printable ASCII only (the app's own links are): no control characters, no backslash browsers read as `/`.
  if (!/^\/[\x20-\x5b\x5d-\x7e]*$/.test(value) || value.startsWith("//")) return CONSOLE_HOME;
  const url = URL.parse(value, PLACEHOLDER_ORIGIN);
  if (!url || url.origin !== PLACEHOLDER_ORIGIN) return CONSOLE_HOME;
  if (url.pathname !== "/console" && !url.pathname.startsWith("/console/")) return CONSOLE_HOME;
  return `${url.pathname}${url.search}${url.hash}`;
}
