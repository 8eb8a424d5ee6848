// The control plane's REST API (`/api/v1`), as the commands use it: JSON in
// and out, every error turned into a CliError with its exit code and the
// control plane's own explanation.
import { CliError, EXIT, type ExitCode } from "./errors.js";

const API_PREFIX = "/api/v1";
/** A request that takes longer than this is given up (a stalled network, a hung proxy). */
const DEFAULT_TIMEOUT_MS = 30_000;

interface Problem {
  code?: string;
  title?: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}

export interface ApiClient {
  readonly url: string;
  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  patch<T>(path: string, body: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
  /** A GET without the credential: the control plane's public routes (how to log in). */
  public<T>(path: string): Promise<T>;
}

export function createApiClient(url: string, token: string, timeoutMs = DEFAULT_TIMEOUT_MS): ApiClient {
  const target = (path: string, query?: Record<string, string | number | undefined>) => {
    const address = new URL(`${url}${API_PREFIX}${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== "") address.searchParams.set(name, String(value));
    }
    return address;
  };

  async function send(
    method: string,
    path: string,
    options: {
      body?: unknown;
      query?: Record<string, string | number | undefined>;
      anonymous?: boolean;
    } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (!options.anonymous) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(target(path, options.query), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const cause =
        error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
      throw new CliError(
        `could not reach the control plane at ${url} (${cause}); is it running, and is --url right?`,
        EXIT.failure,
      );
    }
    if (!response.ok) throw await problemOf(response, method, path);
    return response;
  }

  async function json<T>(response: Response): Promise<T> {
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`the control plane at ${url} answered with something that is not JSON`, EXIT.failure);
    }
  }

  return {
    url,
    get: async (path, query) => json(await send("GET", path, { query })),
    public: async (path) => json(await send("GET", path, { anonymous: true })),
    post: async (path, body) => json(await send("POST", path, { body: body ?? {} })),
    put: async (path, body) => json(await send("PUT", path, { body })),
    patch: async (path, body) => json(await send("PATCH", path, { body })),
    delete: async (path) => json(await send("DELETE", path)),
  };
}

async function problemOf(response: Response, method: string, path: string): Promise<CliError> {
  let problem: Problem = {};
  try {
    problem = (await response.json()) as Problem;
  } catch {
    // Not problem+json (a proxy's error page): the status says enough.
  }
  const detail = problem.detail ?? problem.title ?? response.statusText;
  const issues = (problem.errors ?? []).map((issue) => `${issue.path}: ${issue.message}`);
  const { status } = response;
  if (status === 401) {
    return new CliError(
      `the control plane refused the credential (${detail}): run \`modelgate login\` again`,
      EXIT.auth,
      [],
      status,
    );
  }
  if (status === 403) return new CliError(`not allowed: ${detail}`, EXIT.auth, [], status);
  // 429 (too many requests) is no mistake of the command line: try again later.
  const code: ExitCode =
    status === 404
      ? EXIT.notFound
      : status === 409
        ? EXIT.conflict
        : status >= 400 && status < 500 && status !== 429
          ? EXIT.usage
          : EXIT.failure;
  const prefix = status >= 500 ? `the control plane failed ${method} ${path} (${status})` : `${detail}`;
  return new CliError(status >= 500 ? `${prefix}: ${detail}` : prefix, code, issues, status);
}
