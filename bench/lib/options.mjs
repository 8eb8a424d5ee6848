// The benchmark's settings, read once at start: command-line flags and
// BENCH_* environment variables (empty ones count as unset).

import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export class UsageError extends Error {
  name = "UsageError";
}

export const USAGE = `usage: npm run bench [-- --quick]

  --quick   a smoke run: 1 round of 1 s, fewer sequential requests

Environment (empty counts as unset):
  BENCH_ROUNDS                rounds over all targets (default 3; --quick 1)
  BENCH_DURATION_S            seconds of each load run (default 5; --quick 1)
  BENCH_CONNECTIONS           concurrent connections of the load runs (default 50)
  BENCH_SEQUENTIAL            non-streaming requests per sequential run (default 500; --quick 100)
  BENCH_SEQUENTIAL_STREAMING  streaming requests per sequential run (default 50; --quick 10)
  BENCH_WARMUP_S              seconds of load per target and workload before round 1 (default 2; --quick 1)
  BENCH_LOG_LEVEL             LOG_LEVEL of gateway and agent (default info, their production default)
  BENCH_CPU_PROF              true: run gateway, agent and control plane with --cpu-prof (profiles in the
                              run's folder)
  BENCH_DATABASE_URL          the scratch database, dropped and recreated; its name must contain "bench"
                              (default postgresql://postgres@127.0.0.1:5432/modelgate_bench)
  BENCH_REDIS_URL             Redis of the gateway's audit queue (default redis://127.0.0.1:6379); the
                              benchmark's queue is removed at the end
  BENCH_AUDIT_WORKER          false: the control plane does not store the records (default true: it does,
                              and its CPU until the queue is drained is charged to modelgate's requests)
  BENCH_STAGES                true: also measure the target "nomask" (the same gateway and agent, a
                              policy without masking), so the masking stage's cost is one number
                              (default true; --quick false)
  BENCH_PORTKEY               auto (default): measure the Portkey gateway (target "portkey") when
                              \`npm run bench:peers\` has installed it; true: require it; false: skip it
  BENCH_NODE_ARGS             V8/Node flags (space separated) for this tree's gateway and agent only
  BENCH_MALLOC_ARENA_MAX      MALLOC_ARENA_MAX for this tree's gateway and agent only; with
                              BENCH_BASELINE_ROOT set to this same tree, the A/B of such settings
  BENCH_HOP_ENV               NAME=value pairs (space separated) for this tree's gateway and agent only,
                              likewise (e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318: tracing)
  BENCH_BASELINE_ROOT         another built checkout (e.g. a git worktree of the previous revision): its
                              gateway and agent run as the target "baseline" in the same rounds, and the
                              report compares this tree with it
`;

const DEFAULTS = {
  rounds: 3,
  durationS: 5,
  connections: 50,
  sequential: 500,
  sequentialStreaming: 50,
  warmupS: 2,
};

const QUICK = { rounds: 1, durationS: 1, sequential: 100, sequentialStreaming: 10, warmupS: 1 };

/** The Portkey gateway's server, where `npm run bench:peers` installs it. */
const PORTKEY_SERVER = fileURLToPath(
  new URL("../peers/node_modules/@portkey-ai/gateway/build/start-server.js", import.meta.url),
);

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export function loadOptions(argv, env) {
  const flags = new Set(argv);
  for (const flag of flags) {
    if (flag !== "--quick" && flag !== "--help") throw new UsageError(`unknown argument "${flag}"`);
  }
  const quick = flags.has("--quick");
  const base = quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;

  const text = (name) => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const integer = (name, fallback, min, max) => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= min && value <= max)) throw new UsageError(`${name} must be an integer from ${min} to ${max}`);
    return value;
  };

  const logLevel = text("BENCH_LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.has(logLevel)) throw new UsageError(`BENCH_LOG_LEVEL must be one of ${[...LOG_LEVELS].join(", ")}`);

  const stagesText = text("BENCH_STAGES") ?? (quick ? "false" : "true");
  if (!["true", "false", "1", "0"].includes(stagesText)) throw new UsageError("BENCH_STAGES must be true or false");

  const cpuProfileText = text("BENCH_CPU_PROF") ?? "false";
  if (!["true", "false", "1", "0"].includes(cpuProfileText))
    throw new UsageError("BENCH_CPU_PROF must be true or false");

  const databaseUrl = text("BENCH_DATABASE_URL") ?? "postgresql://postgres@127.0.0.1:5432/modelgate_bench";
  let databaseName;
  try {
    databaseName = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  } catch {
    throw new UsageError("BENCH_DATABASE_URL must be a postgresql:// URL");
  }
  // The database is dropped at start and at the end: refuse any name that
  // could be someone's real database.
  if (!/^[A-Za-z0-9_]*bench[A-Za-z0-9_]*$/.test(databaseName)) {
    throw new UsageError('BENCH_DATABASE_URL must name a scratch database whose name contains "bench"');
  }

  const portkeyText = text("BENCH_PORTKEY") ?? "auto";
  if (!["auto", "true", "false"].includes(portkeyText))
    throw new UsageError("BENCH_PORTKEY must be auto, true or false");
  const portkeyInstalled = existsSync(PORTKEY_SERVER);
  if (portkeyText === "true" && !portkeyInstalled) {
    throw new UsageError("BENCH_PORTKEY=true but Portkey is not installed: run npm run bench:peers first");
  }

  const nodeArgs = text("BENCH_NODE_ARGS")?.split(/\s+/) ?? [];
  if (nodeArgs.some((arg) => !arg.startsWith("--"))) throw new UsageError("BENCH_NODE_ARGS must be --flags");
  const arenas = text("BENCH_MALLOC_ARENA_MAX");
  if (arenas !== undefined && !/^[1-9]\d{0,2}$/.test(arenas)) {
    throw new UsageError("BENCH_MALLOC_ARENA_MAX must be a whole number from 1 to 999");
  }

  const hopEnv = {};
  for (const pair of text("BENCH_HOP_ENV")?.split(/\s+/) ?? []) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!match) throw new UsageError("BENCH_HOP_ENV must be NAME=value pairs, space separated");
    hopEnv[match[1]] = match[2];
  }

  const baselineRoot = text("BENCH_BASELINE_ROOT");
  if (baselineRoot !== undefined) {
    for (const built of ["apps/gateway/dist/main.js", "apps/agent/dist/main.js"]) {
      if (!existsSync(path.join(baselineRoot, built))) {
        throw new UsageError(
          `BENCH_BASELINE_ROOT has no ${built}: build that checkout first (npm ci && npm run build)`,
        );
      }
    }
  }

  return {
    help: flags.has("--help"),
    baselineRoot: baselineRoot === undefined ? undefined : path.resolve(baselineRoot),
    quick,
    rounds: integer("BENCH_ROUNDS", base.rounds, 1, 50),
    durationS: integer("BENCH_DURATION_S", base.durationS, 1, 600),
    connections: integer("BENCH_CONNECTIONS", base.connections, 1, 1000),
    sequential: integer("BENCH_SEQUENTIAL", base.sequential, 10, 1_000_000),
    sequentialStreaming: integer("BENCH_SEQUENTIAL_STREAMING", base.sequentialStreaming, 0, 100_000),
    warmupS: integer("BENCH_WARMUP_S", base.warmupS, 0, 600),
    logLevel,
    cpuProfile: cpuProfileText === "true" || cpuProfileText === "1",
    stages: stagesText === "true" || stagesText === "1",
    hopRuntime: { nodeArgs, env: { ...hopEnv, ...(arenas === undefined ? {} : { MALLOC_ARENA_MAX: arenas }) } },
    portkeyServer: portkeyText !== "false" && portkeyInstalled ? PORTKEY_SERVER : undefined,
    databaseUrl,
    // The streaming workload: 20 SSE chunks, 5 ms apart.
    streamChunks: 20,
    chunkIntervalMs: 5,
  };
}
