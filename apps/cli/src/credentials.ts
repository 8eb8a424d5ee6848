// Where `modelgate login` keeps the control plane's URL and the credential:
// a JSON file only its owner can read (0600, in a 0700 directory), or the
// environment (MODELGATE_URL, MODELGATE_TOKEN), which wins, for scripts and CI.
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CliError, EXIT } from "./errors.js";

export interface Credentials {
  url: string;
  token: string;
}

/** `$MODELGATE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/modelgate`, else `~/.config/modelgate`. */
function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MODELGATE_CONFIG_DIR) return env.MODELGATE_CONFIG_DIR;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(base, "modelgate");
}

const credentialsPath = (env: NodeJS.ProcessEnv = process.env) => path.join(configDir(env), "credentials.json");

export async function saveCredentials(credentials: Credentials, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const dir = configDir(env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const file = credentialsPath(env);
  // A new file, 0600 from its creation, then moved over the old one: the
  // token is never in a file (an older one may have wider rights) others can read.
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return file;
}

export async function removeCredentials(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  try {
    await rm(credentialsPath(env));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/**
 * The credentials to use: the environment's, else the file's. `urlOverride`
 * (the `--url` option) names the control plane for MODELGATE_TOKEN; with
 * saved credentials it must be the URL they were saved for. Refuses a file
 * others can read: the token in it may be an administrator's.
 */
export async function loadCredentials(
  urlOverride: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credentials> {
  const envToken = env.MODELGATE_TOKEN?.trim();
  if (envToken) {
    const url = urlOverride ?? env.MODELGATE_URL?.trim();
    if (!url) throw new CliError("MODELGATE_TOKEN is set but no URL: set MODELGATE_URL or pass --url", EXIT.usage);
    return { url: normalizeUrl(url, env), token: envToken };
  }
  const file = credentialsPath(env);
  let text: string;
  try {
    const info = await stat(file);
    // Windows reports no owner-only modes; there the profile directory's ACL protects the file.
    if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      throw new CliError(
        `${file} can be read by other users; run \`chmod 600 ${file}\` or \`modelgate login\` again`,
        EXIT.auth,
      );
    }
    text = await readFile(file, "utf8");
  } catch (error) {
    if (error instanceof CliError) throw error;
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new CliError("not logged in: run `modelgate login --url <control plane URL>` first", EXIT.auth);
    }
    throw error;
  }
  let saved: Partial<Credentials>;
  try {
    saved = JSON.parse(text) as Partial<Credentials>;
  } catch {
    throw new CliError(`${file} is not valid JSON: run \`modelgate login\` again`, EXIT.auth);
  }
  if (typeof saved.url !== "string" || typeof saved.token !== "string") {
    throw new CliError(`${file} has no url and token: run \`modelgate login\` again`, EXIT.auth);
  }
  const url = normalizeUrl(saved.url, env);
  // The saved token is that control plane's: --url must not send it anywhere else.
  if (urlOverride !== undefined && normalizeUrl(urlOverride, env) !== url) {
    throw new CliError(
      `the saved credentials are for ${url}; to use ${normalizeUrl(urlOverride, env)}, log in there first (\`modelgate login --url ...\`)`,
      EXIT.auth,
    );
  }
  return { url, token: saved.token };
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The control plane's base URL without a trailing slash. https, or http to
 * this machine: the credential travels in every request. Plain http to
 * another host only with MODELGATE_CLI_ALLOW_HTTP=true (a network you trust
 * as much as the token).
 */
export function normalizeUrl(value: string, env: NodeJS.ProcessEnv = process.env): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`not a URL: ${value} (for example https://modelgate.internal)`, EXIT.usage);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError(
      `the control plane's URL must be https (or http to this machine), not ${url.protocol}`,
      EXIT.usage,
    );
  }
  if (url.protocol === "http:" && !LOOPBACK_HOSTS.has(url.hostname) && env.MODELGATE_CLI_ALLOW_HTTP !== "true") {
    throw new CliError(
      `${url.origin} is plain http: the token would cross the network readable; use https, or set MODELGATE_CLI_ALLOW_HTTP=true on a network you trust`,
      EXIT.usage,
    );
  }
  if (url.username || url.password) throw new CliError("put no credentials in the URL: use --token-stdin", EXIT.usage);
  return url.href.replace(/\/+$/, "");
}
