// Turns the rounds' raw results into the printed report: one table per
// workload (medians across rounds) and the targets, pass or fail.
import { median } from "./stats.mjs";

const TARGET_NAMES = ["direct", "proxy", "portkey", "modelgate", "nomask", "baseline"];

/** Median across rounds of every reported metric, per workload and target. */
export function medians(results, workloads) {
  const table = {};
  for (const workload of workloads) {
    table[workload.id] = {};
    for (const target of TARGET_NAMES) {
      const runs = results.filter((result) => result.workload === workload.id && result.target === target);
      if (runs.length === 0) continue;
      const of = (pick) => median(runs.map(pick));
      table[workload.id][target] = {
        rounds: runs.length,
        requestsPerSecond: of((run) => run.requestsPerSecond),
        p50: of((run) => run.latency.p50),
        p99: of((run) => run.latency.p99),
        ttfbP50: of((run) => run.ttfb?.p50),
        ttfbP99: of((run) => run.ttfb?.p99),
        hopCpuMsPerRequest: of((run) => run.cpu.hopMsPerRequest),
        ingestCpuMsPerRequest: of((run) => run.cpu.ingestMsPerRequest),
        postgresCpuMsPerRequest: of((run) => run.cpu.postgresMsPerRequest),
        redisCpuMsPerRequest: of((run) => run.cpu.redisMsPerRequest),
        allCpuMsPerRequest: of((run) => run.cpu.allMsPerRequest),
        fixtureCpuMsPerRequest: of((run) => run.cpu.fixtureMsPerRequest),
        clientCpuMsPerRequest: of((run) => run.cpu.clientMsPerRequest),
        otherCpuPercent: of((run) => run.cpu.otherShare * 100),
        errors: runs.reduce((sum, run) => sum + run.errors + (run.timeouts ?? 0), 0),
      };
    }
  }
  return table;
}

const ms = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : "—");
const signedMs = (value) => (Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(2)} ms` : "—");

export function formatTable(header, rows) {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => String(row[column]).length)));
  const line = (cells) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join("  ");
  return [
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map((row) => line(row.map(String))),
  ].join("\n");
}

export function workloadTables(table, workloads) {
  const sections = [];
  for (const workload of workloads) {
    const byTarget = table[workload.id];
    const rows = TARGET_NAMES.filter((target) => byTarget[target]).map((target) => {
      const m = byTarget[target];
      const hop = target === "direct" ? "—" : ms(m.hopCpuMsPerRequest, 3);
      const cpu = [hop, ms(m.ingestCpuMsPerRequest, 3), ms(m.allCpuMsPerRequest, 3), ms(m.postgresCpuMsPerRequest, 3)];
      const other = ms(m.otherCpuPercent, 0);
      return workload.kind === "sequential"
        ? [
            target,
            ms(m.p50),
            ms(m.p99),
            ms(m.ttfbP50),
            ms(m.ttfbP99),
            ...cpu,
            ms(m.fixtureCpuMsPerRequest, 3),
            other,
            m.errors,
          ]
        : [
            target,
            m.requestsPerSecond.toFixed(0),
            ms(m.p50),
            ms(m.p99),
            ...cpu,
            ms(m.fixtureCpuMsPerRequest, 3),
            ms(m.clientCpuMsPerRequest, 3),
            other,
            m.errors,
          ];
    });
    const cpuHeader = ["hop CPU", "ingest CPU", "all CPU", "pg CPU"];
    const header =
      workload.kind === "sequential"
        ? ["target", "p50 ms", "p99 ms", "TTFB p50", "TTFB p99", ...cpuHeader, "fixture CPU"]
        : ["target", "req/s", "p50 ms", "p99 ms", ...cpuHeader, "fixture CPU", "client CPU"];
    header.push("other CPU %", "errors");
    sections.push(`${workload.title} (CPU: ms per request)\n${formatTable(header, rows)}`);
  }
  return sections.join("\n\n");
}

/**
 * What each stage of modelgate costs per request under load, from the same
 * run: gateway + agent without masking (the `nomask` target), what masking
 * adds (the same processes, a policy that masks), the control plane's audit
 * ingestion, and Postgres storing the sessions; the bare proxy for scale.
 */
export function stageTable(table, workloads) {
  const rows = [];
  for (const workload of workloads.filter((item) => item.kind === "load")) {
    const byTarget = table[workload.id];
    const full = byTarget?.modelgate;
    if (!full) continue;
    const plain = byTarget.nomask;
    const label = workload.streaming ? "streaming" : "non-streaming";
    const value = (number) => ms(number, 3);
    rows.push([
      label,
      value(plain?.hopCpuMsPerRequest),
      value(plain ? full.hopCpuMsPerRequest - plain.hopCpuMsPerRequest : Number.NaN),
      value(full.ingestCpuMsPerRequest),
      value(full.allCpuMsPerRequest),
      value(full.postgresCpuMsPerRequest),
      value(full.redisCpuMsPerRequest),
      value(byTarget.proxy?.hopCpuMsPerRequest),
    ]);
  }
  if (rows.length === 0) return "";
  return `CPU per request by stage, under load (ms; masking = modelgate − nomask, same processes)\n${formatTable(
    ["workload", "gateway+agent", "masking", "audit ingest", "all modelgate", "Postgres", "Redis", "bare proxy"],
    rows,
  )}`;
}

/** The targets, computed from the medians; the bare proxy's figures are shown for scale. */
export function checkTargets(table, workloads) {
  const byKind = (kind, streaming) => workloads.find((w) => w.kind === kind && w.streaming === streaming)?.id;
  const sequential = table[byKind("sequential", false)];
  const sequentialStreaming = table[byKind("sequential", true)];
  const load = table[byKind("load", false)];
  const loadStreaming = table[byKind("load", true)];
  const checks = [];
  const add = (name, value, target, pass) => checks.push({ name, ...value, target, pass });
  const over = (rows, metric) => ({
    modelgate: rows.modelgate[metric] - rows.direct[metric],
    proxy: rows.proxy[metric] - rows.direct[metric],
  });

  if (sequential) {
    const added = over(sequential, "p50");
    add("idle added latency p50 (non-streaming)", show(added, signedMs), "≤ +1 ms", added.modelgate <= 1);
    const ttfb = over(sequential, "ttfbP50");
    add("idle TTFB overhead p50 (non-streaming)", show(ttfb, signedMs), "≤ +1 ms", ttfb.modelgate <= 1);
  }
  if (sequentialStreaming) {
    const ttfb = over(sequentialStreaming, "ttfbP50");
    add("idle TTFB overhead p50 (streaming)", show(ttfb, signedMs), "≤ +1 ms", ttfb.modelgate <= 1);
  }
  if (loadStreaming) {
    const share = (target) => loadStreaming[target].requestsPerSecond / loadStreaming.direct.requestsPerSecond;
    const shares = { modelgate: share("modelgate"), proxy: share("proxy") };
    const percent = (value) => `${(value * 100).toFixed(1)} %`;
    add("streaming throughput vs direct", show(shares, percent), "≥ 95 %", shares.modelgate >= 0.95);
    const p99 = over(loadStreaming, "p99");
    add("streaming p99 vs direct", show(p99, signedMs), "≤ +10 ms", p99.modelgate <= 10);
  }
  if (load?.portkey) {
    const ratio = load.modelgate.requestsPerSecond / load.portkey.requestsPerSecond;
    add(
      "non-streaming throughput vs Portkey (same run)",
      {
        modelgate: `${ratio.toFixed(2)}× (${load.modelgate.requestsPerSecond.toFixed(0)} / ${load.portkey.requestsPerSecond.toFixed(0)} req/s)`,
        proxy: "—",
      },
      "≥ 4×",
      ratio >= 4,
    );
  }
  for (const [rows, label] of [
    [load, "non-streaming"],
    [loadStreaming, "streaming"],
  ]) {
    if (!rows) continue;
    // Every modelgate process, the audit ingestion included (the measure).
    const ratio = rows.modelgate.allCpuMsPerRequest / rows.proxy.hopCpuMsPerRequest;
    add(
      `CPU per request vs bare proxy (${label} load, all processes)`,
      {
        modelgate: `${ratio.toFixed(2)}× (${ms(rows.modelgate.allCpuMsPerRequest, 3)} ms)`,
        proxy: `1.00× (${ms(rows.proxy.hopCpuMsPerRequest, 3)} ms)`,
      },
      "≤ 3×",
      ratio <= 3,
    );
  }
  return checks;
}

function show(values, format) {
  return { modelgate: format(values.modelgate), proxy: format(values.proxy) };
}

export function formatChecks(checks) {
  return formatTable(
    ["target from the issue", "modelgate", "bare proxy", "target", "modelgate"],
    checks.map((check) => [check.name, check.modelgate, check.proxy, check.target, check.pass ? "PASS" : "FAIL"]),
  );
}

/**
 * This tree against the baseline tree (BENCH_BASELINE_ROOT), measured in the
 * same rounds: per workload, the change in latency, throughput and CPU per
 * request. Positive percentages are worse for latency and CPU, better for
 * throughput.
 */
export function baselineTable(table, workloads) {
  const percent = (now, before) =>
    Number.isFinite(now) && Number.isFinite(before) && before !== 0
      ? `${now >= before ? "+" : ""}${(((now - before) / before) * 100).toFixed(1)} %`
      : "—";
  const rows = [];
  for (const workload of workloads) {
    const now = table[workload.id]?.modelgate;
    const before = table[workload.id]?.baseline;
    if (!now || !before) continue;
    rows.push([
      workload.id,
      workload.kind === "load" ? percent(now.requestsPerSecond, before.requestsPerSecond) : "—",
      percent(now.p50, before.p50),
      percent(now.p99, before.p99),
      percent(now.hopCpuMsPerRequest, before.hopCpuMsPerRequest),
    ]);
  }
  if (rows.length === 0) return "";
  return `This tree against the baseline (same rounds)\n${formatTable(
    ["workload", "req/s", "p50", "p99", "hop CPU/req"],
    rows,
  )}`;
}
