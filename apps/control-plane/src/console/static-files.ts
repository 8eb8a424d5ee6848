import { access } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import express, { type Response, type Router } from "express";
import { setRouteTemplate } from "../http/metrics.js";

/** Built files under assets/ carry a content hash in their names: a new build never reuses one. */
const ASSETS_DIR = "assets";
const IMMUTABLE = "public, max-age=31536000, immutable";
const NOT_BUILT = "the console is not built: run npm run build";

function notBuilt(res: Response): void {
  res.status(503).type("text/plain").send(NOT_BUILT);
}

/** A build has its index.html; checked per request, so a console built after start is served without a restart. */
async function isBuilt(root: string): Promise<boolean> {
  try {
    await access(path.join(root, "index.html"));
    return true;
  } catch {
    return false;
  }
}

/**
 * The console's build output: the `dist/` beside the package.json of
 * @modelgate/console, when that package is installed; undefined otherwise.
 */
export function defaultConsoleDir(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve("@modelgate/console/package.json");
    return path.join(path.dirname(manifest), "dist");
  } catch {
    return undefined;
  }
}

/**
 * Serves the single-page app from `dir`: its files as they are, hashed
 * assets cached for good, and index.html for every other GET (the app's
 * own routes, /console/login included). A missing asset is a 404, not
 * index.html: a stale page asking for a chunk of the previous build then
 * fails clearly instead of parsing HTML as a script.
 *
 * Paths are resolved by `send` under `dir`, which refuses `..` segments
 * after percent-decoding and never follows them out of `dir`; dotfiles are
 * not served.
 */
export function consoleStaticFiles(dir: string | undefined): Router {
  const router = express.Router({ caseSensitive: true, strict: true });
  router.use((_req, res, next) => {
    setRouteTemplate(res, "/console/*");
    next();
  });
  if (dir === undefined) {
    router.use((_req, res) => notBuilt(res));
    return router;
  }
  const root = path.resolve(dir);
  router.use(
    express.static(root, {
      index: false,
      fallthrough: true,
      dotfiles: "ignore",
      redirect: false,
      // The app's no-store stays on everything but hashed assets.
      cacheControl: false,
      setHeaders(res, file) {
        if (path.relative(root, file).startsWith(`${ASSETS_DIR}${path.sep}`)) res.setHeader("cache-control", IMMUTABLE);
      },
    }),
  );
  router.use(async (req, res, next) => {
    if (req.method !== "GET" && req.method !== "HEAD") return next();
    if (!(await isBuilt(root))) return notBuilt(res);
    if (req.path.startsWith(`/${ASSETS_DIR}/`)) {
      res.status(404).type("text/plain").send("no such asset in this build of the console");
      return;
    }
    res.sendFile("index.html", { root, dotfiles: "deny", cacheControl: false }, (error?: NodeJS.ErrnoException) => {
      if (!error || res.headersSent) return;
      // Removed since the check above (a build being replaced).
      if (error.code === "ENOENT" || error.code === "ENOTDIR") return notBuilt(res);
      next(error);
    });
  });
  return router;
}
