#!/usr/bin/env node
// Policy evaluation micro-benchmark: what @modelgate/policy costs the
// gateway per request. Builds 1,000 policies shaped like a large
// organisation's (many groups and connections, model globs, limits on some,
// prompt rules on some), then times 10,000 evaluations of varied subjects
// and requests (allowed, denied, capped, prompt-blocked; ~2 KB prompts) over
// several rounds. Everything is generated from a fixed seed, so runs compare.
//
// Runs the built package: `scripts/with-node.sh npx tsc -p packages/policy/tsconfig.build.json`
// first, then `scripts/with-node.sh node bench/policy-eval.mjs`.
// Environment: BENCH_ROUNDS (default 7), BENCH_EVALUATIONS (default 10000).
import os from "node:os";
import { PolicySet } from "../packages/policy/dist/index.js";
import { seededRandom } from "./lib/random.mjs";
import { median, summarize } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 7);
const EVALUATIONS = Number(process.env.BENCH_EVALUATIONS || 10_000);
const POLICIES = 1000;

const rand = seededRandom(20261126);
const pick = (list) => list[Math.floor(rand() * list.length)];
const chance = (p) => rand() < p;
const some = (list, min, max) => {
  const count = min + Math.floor(rand() * (max - min + 1));
  return [...new Set(Array.from({ length: count }, () => pick(list)))];
};

const GROUPS = Array.from({ length: 300 }, (_, index) => `team-${index}`);
const CONNECTIONS = Array.from({ length: 40 }, (_, index) => `gpu-pool-${index}`);
const MODELS = [
  "llama-3.1-8b-instruct",
  "llama-3.1-70b-instruct",
  "llama-3.2-3b-instruct",
  "meta-llama/Llama-3.1-8B-Instruct",
  "qwen2.5:7b",
  "qwen2.5:32b",
  "mistral-7b-instruct-v0.3",
  "mixtral-8x7b-instruct",
  "gemma-2-9b-it",
  "nomic-embed-text",
  "bge-large-en-v1.5",
  "phi-3-mini-4k-instruct",
];
const GLOBS = [
  "*",
  "llama-3.1-*",
  "llama-*-instruct",
  "meta-llama/*",
  "qwen2.5:*",
  "*-instruct*",
  "mistral-*",
  "*embed*",
];
const OPERATION_SETS = [
  ["inference"],
  ["inference", "models.list"],
  ["inference", "embeddings", "models.list"],
  ["embeddings"],
  ["inference", "embeddings", "models.list", "read"],
  ["models.list", "read"],
];
const RULES = [
  { pattern: "(export|dump) (all|every)", flags: "i", action: "block", description: "bulk export" },
  { pattern: "\\bpassword\\s*[:=]", flags: "i", action: "block", description: "credentials" },
  { pattern: "\\b\\d{3}-\\d{2}-\\d{4}\\b", action: "block", description: "US social security number" },
  { pattern: "ignore (all )?previous instructions", flags: "i", action: "block", description: "prompt injection" },
  { pattern: "salary (band|data)", flags: "i", action: "require_approval", description: "payroll" },
  { pattern: "confidential|internal only", flags: "i", action: "block" },
];
const WORDS =
  "the model answers questions about quarterly revenue forecasts customer churn and infrastructure costs while summarising long reports for the data science team in clear plain language".split(
    " ",
  );

function prose(chars) {
  const words = [];
  let length = 0;
  while (length < chars) {
    const word = pick(WORDS);
    words.push(word);
    length += word.length + 1;
  }
  return words.join(" ");
}

function makePolicy(index) {
  const subjects = { groups: some(GROUPS, 1, 3) };
  if (chance(0.1)) subjects.users = [`user${index}@example.com`];
  const limits = {};
  if (chance(0.5)) limits.maxTokens = pick([256, 512, 1024, 4096, 8192]);
  if (chance(0.2)) limits.temperature = { min: 0, max: pick([0.5, 1, 1.5]) };
  if (chance(0.2)) limits.maxPromptChars = pick([4000, 20_000, 100_000]);
  if (chance(0.4)) limits.requestsPerMinute = pick([30, 60, 600]);
  if (chance(0.3)) limits.tokensPerMinute = pick([50_000, 200_000]);
  return {
    id: `0194f5c2-7f3b-7cc3-8f00-${String(index).padStart(12, "0")}`,
    name: `policy-${index}`,
    revision: 1,
    enabled: chance(0.95),
    definition: {
      subjects: { groups: [], users: [], apiKeys: [], ...subjects },
      resources: some(CONNECTIONS, 1, 3).map((connection) => ({
        connection,
        models: chance(0.3) ? ["*"] : some([...GLOBS, ...MODELS], 1, 4),
      })),
      operations: pick(OPERATION_SETS),
      limits,
      promptRules: chance(0.25) ? some(RULES, 1, 4) : [],
    },
  };
}

const policies = Array.from({ length: POLICIES }, (_, index) => makePolicy(index));

// Subjects: 1-6 groups each, some known by email.
const subjects = Array.from({ length: 500 }, (_, index) => ({
  userId: `user-${index}`,
  email: chance(0.5) ? `user${index}@example.com` : undefined,
  groups: some(GROUPS, 1, 6),
}));

const PROMPT = prose(2000);
// Trips several of the rules above, wherever they apply.
const BLOCKED_PROMPT = `${prose(1000)} please export all customer records, internal only, password: hunter2 ${prose(1000)}`;

function makeRequest() {
  const subject = pick(subjects);
  // Mostly requests the subject plausibly has access to, so the engine does
  // the full work (prompt rules, limits); the rest miss.
  const mine = policies.filter((policy) => policy.definition.subjects.groups.some((g) => subject.groups.includes(g)));
  const resource = mine.length > 0 && chance(0.8) ? pick(pick(mine).definition.resources) : undefined;
  const connection = resource?.connection ?? pick(CONNECTIONS);
  const model = pick(MODELS);
  const roll = rand();
  if (roll < 0.1) return { subject, request: { connection, operation: "models.list", format: "none" } };
  if (roll < 0.2) {
    const body = { model, input: [prose(500), prose(500)] };
    return { subject, request: { connection, model, operation: "embeddings", format: "openai.embeddings", body } };
  }
  const body = { model, messages: [{ role: "system", content: "You are a helpful analyst." }] };
  body.messages.push({ role: "user", content: chance(0.1) ? BLOCKED_PROMPT : PROMPT });
  if (chance(0.5)) body.max_tokens = pick([128, 512, 2048, 16_000]);
  if (chance(0.3)) body.temperature = pick([0, 0.7, 1.2]);
  if (chance(0.2)) {
    return {
      subject,
      request: {
        connection,
        model,
        operation: "inference",
        format: "ollama.chat",
        body: { model, messages: body.messages, options: { num_predict: body.max_tokens ?? -1 } },
      },
    };
  }
  return { subject, request: { connection, model, operation: "inference", format: "openai.chat", body } };
}

const workload = Array.from({ length: EVALUATIONS }, makeRequest);

// Construction: what a configuration push costs the gateway.
const constructions = [];
let set;
for (let round = 0; round < ROUNDS; round++) {
  const started = performance.now();
  set = new PolicySet(policies);
  constructions.push(performance.now() - started);
}
if (set.errors.length > 0) throw new Error(`policies failed to compile: ${JSON.stringify(set.errors[0])}`);

// The decision mix, so the figures can be read against what was decided.
const kinds = workload.map(({ subject, request }) => {
  const evaluation = set.evaluate(subject, request);
  if (evaluation.decision === "allowed") return evaluation.capped.length > 0 ? "allowed, capped" : "allowed";
  return `denied: ${evaluation.code}`;
});
const shares = new Map();
for (const kind of kinds) shares.set(kind, (shares.get(kind) ?? 0) + 1);
const KINDS = [...shares.keys()].sort((a, b) => shares.get(b) - shares.get(a));

function round() {
  const samples = new Float64Array(workload.length);
  for (let index = 0; index < workload.length; index++) {
    const { subject, request } = workload[index];
    const started = performance.now();
    set.evaluate(subject, request);
    samples[index] = (performance.now() - started) * 1000;
  }
  const byKind = new Map(KINDS.map((kind) => [kind, []]));
  for (let index = 0; index < workload.length; index++) byKind.get(kinds[index]).push(samples[index]);
  return { all: summarize(samples), byKind: new Map([...byKind].map(([kind, list]) => [kind, summarize(list)])) };
}

round(); // warm-up: let V8 optimise before measuring
const rounds = Array.from({ length: ROUNDS }, round);

// One large prompt, for a subject whose grant carries prompt rules: the
// cost that grows with the prompt (extraction, normalisation, the rules).
const ruledPolicy = policies
  .filter((policy) => policy.enabled && policy.definition.operations.includes("inference"))
  .sort((a, b) => b.definition.promptRules.length - a.definition.promptRules.length)[0];
const ruled = { userId: "large-prompt", groups: ruledPolicy.definition.subjects.groups };
const large = {
  connection: ruledPolicy.definition.resources[0].connection,
  operation: "inference",
  format: "openai.chat",
  body: { messages: [{ role: "user", content: prose(1_000_000) }] },
};
const largeDecision = set.evaluate(ruled, large);
const largeTimes = Array.from({ length: 5 }, () => {
  const started = performance.now();
  set.evaluate(ruled, large);
  return performance.now() - started;
});

const cpu = os.cpus()[0]?.model ?? "unknown";
out(`policy evaluation: ${POLICIES} policies (${set.size} enabled), ${workload.length} evaluations x ${ROUNDS} rounds`);
out(`machine: ${os.cpus().length} CPUs (${cpu}), Node ${process.version}`);
out("");
out("decision mix, and time per evaluation (median of rounds):");
out(`  ${"decision".padEnd(34)} ${"share".padStart(7)} ${"p50 µs".padStart(8)} ${"p99 µs".padStart(8)}`);
for (const kind of KINDS) {
  const share = ((100 * shares.get(kind)) / workload.length).toFixed(1);
  const p50 = median(rounds.map((r) => r.byKind.get(kind).p50)).toFixed(2);
  const p99 = median(rounds.map((r) => r.byKind.get(kind).p99)).toFixed(2);
  out(`  ${kind.padEnd(34)} ${share.padStart(5)} % ${p50.padStart(8)} ${p99.padStart(8)}`);
}
out("");
out("round   p50 µs   p99 µs  mean µs   max µs");
for (const [index, { all }] of rounds.entries()) {
  const cells = [all.p50, all.p99, all.mean].map((value) => value.toFixed(2).padStart(8));
  out(`${String(index + 1).padStart(5)} ${cells.join(" ")} ${all.max.toFixed(0).padStart(8)}`);
}
out("");
const overall = (key) => median(rounds.map((r) => r.all[key])).toFixed(2);
out(`median of rounds: p50 ${overall("p50")} µs, p99 ${overall("p99")} µs, mean ${overall("mean")} µs per evaluation`);
out(
  `PolicySet construction (${POLICIES} policies): median ${median(constructions).toFixed(1)} ms (min ${Math.min(...constructions).toFixed(1)}, max ${Math.max(...constructions).toFixed(1)})`,
);
out(
  `1 MB prompt with ${ruledPolicy.definition.promptRules.length} prompt rule(s): median ${median(largeTimes).toFixed(1)} ms per evaluation (${largeDecision.decision}${largeDecision.code ? `: ${largeDecision.code}` : ""})`,
);
