// Headless Chromium from the operating system (Debian's `chromium`), driven
// by playwright-core: no browser download. Every page records the errors it
// logs, so a test can require a console that logs none.
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, uncaught exceptions and CSP violations, as they happened. */
  errors: string[];
  /** Every answer of 400 or more, as "status METHOD /path": a test names the refusals it caused. */
  refusals: string[];
}

export async function openPage(browser: Browser, viewport = { width: 1280, height: 900 }): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  const refusals: string[] = [];
  page.on("console", (message) => {
    // Chromium logs every 4xx/5xx answer as an error line; those are
    // checked exactly through `refusals` instead.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource:")) {
      errors.push(message.text());
    }
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) {
      refusals.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`);
    }
  });
  return { page, context, errors, refusals };
}

/** The repository's root: a relative CONSOLE_SCREENSHOTS is read from there, wherever Jest runs. */
const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));

/** When CONSOLE_SCREENSHOTS names a folder, saves the page there (docs/console.md's pictures). */
export async function screenshot(page: Page, name: string): Promise<void> {
  const setting = process.env.CONSOLE_SCREENSHOTS;
  if (!setting) return;
  const folder = path.resolve(REPO_ROOT, setting);
  mkdirSync(folder, { recursive: true });
  await page.screenshot({ path: path.join(folder, `${name}.png`), fullPage: false });
}
