// docs/observability.md, the example alert rules and the Grafana dashboard
// against the metrics the code registers: every metric is documented, and
// every rule and panel names only metrics that exist.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

/** Source files of the apps and packages, tests left out. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (entry === "node_modules" || entry === "dist" || entry === "generated") return [];
    if (statSync(full).isDirectory()) return sources(full);
    return /\.ts$/.test(entry) && !/\.test\.ts$/.test(entry) ? [full] : [];
  });
}

/** The metric names the code registers with prom-client (`name: "modelgate_…"` in a metric's options). */
function registeredMetrics(): Map<string, "counter" | "gauge" | "histogram"> {
  const metrics = new Map<string, "counter" | "gauge" | "histogram">();
  for (const base of ["apps", "packages"]) {
    for (const file of sources(path.join(ROOT, base))) {
      const text = readFileSync(file, "utf8");
      for (const match of text.matchAll(
        /new (Counter|Gauge|Histogram)(?:<[^>]*>)?\(\{\s*name: "(modelgate_[a-z0-9_]+)"/g,
      )) {
        metrics.set(match[2] as string, (match[1] as string).toLowerCase() as "counter" | "gauge" | "histogram");
      }
    }
  }
  return metrics;
}

/** Series names a PromQL expression can refer to: histograms add _bucket, _sum and _count. */
function knownSeries(metrics: Map<string, string>): Set<string> {
  const series = new Set<string>();
  for (const [name, type] of metrics) {
    series.add(name);
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) series.add(`${name}${suffix}`);
  }
  return series;
}

const namesIn = (expression: string) => [...expression.matchAll(/\bmodelgate_[a-z0-9_]+/g)].map((match) => match[0]);

describe("observability documentation", () => {
  const metrics = registeredMetrics();
  const series = knownSeries(metrics);

  it("finds the metrics of every app (the scan itself works)", () => {
    for (const name of [
      "modelgate_requests_total",
      "modelgate_agent_runtime_healthy",
      "modelgate_control_plane_http_requests_total",
      "modelgate_control_plane_queue_jobs",
    ]) {
      expect(metrics.has(name)).toBe(true);
    }
    expect(metrics.size).toBeGreaterThan(30);
  });

  it("lists every metric in docs/observability.md, with its type", () => {
    const doc = read("docs/observability.md");
    const undocumented = [...metrics]
      .filter(([name, type]) => !new RegExp(`^\\|\\s*\`${name}\`\\s*\\|\\s*${type}\\s*\\|`, "m").test(doc))
      .map(([name, type]) => `${name} (${type})`);
    expect(undocumented).toEqual([]);
    const listed = [...doc.matchAll(/^\|\s*`(modelgate_[a-z0-9_]+)`\s*\|/gm)].map((match) => match[1]);
    expect(listed.filter((name) => !metrics.has(name as string))).toEqual([]);
  });

  it("has alert rules that parse and name only existing metrics", () => {
    const rules = parse(read("deploy/observability/prometheus-rules.yaml")) as {
      groups: { name: string; rules: { alert: string; expr: string }[] }[];
    };
    const alerts = rules.groups.flatMap((group) => group.rules);
    expect(alerts.length).toBeGreaterThan(10);
    const unknown = alerts.flatMap((rule) =>
      namesIn(rule.expr)
        .filter((name) => !series.has(name))
        .map((name) => `${rule.alert}: ${name}`),
    );
    expect(unknown).toEqual([]);
    // Every rule is explained on the page.
    const doc = read("docs/observability.md");
    expect(alerts.filter((rule) => !doc.includes(`\`${rule.alert}\``)).map((rule) => rule.alert)).toEqual([]);
  });

  it("has a Grafana dashboard whose panels query only existing metrics", () => {
    const dashboard = JSON.parse(read("deploy/observability/grafana-dashboard.json")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    expect(dashboard.panels.length).toBeGreaterThan(8);
    const unknown = dashboard.panels.flatMap((panel) =>
      panel.targets.flatMap((target) =>
        namesIn(target.expr)
          .filter((name) => !series.has(name))
          .map((name) => `${panel.title}: ${name}`),
      ),
    );
    expect(unknown).toEqual([]);
  });
});
