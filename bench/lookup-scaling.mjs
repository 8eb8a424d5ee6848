#!/usr/bin/env node
// `npm run bench:scaling`: does the gateway's per-request work grow with the
// size of the configuration? Issue 16 asks that key lookup and policy
// evaluation stay O(1) in the number of keys and policies, benchmarked at
// 100,000 keys. For 1,000, 10,000 and 100,000 API keys (with 100, 1,000 and
// 10,000 policies), the built gateway's ConfigStore takes a snapshot of that
// size, and each request's two lookups are timed as the gateway does them:
// authenticate (hash the presented key, find it) and evaluate the policies
// for the caller it names. The density a caller sees stays the same (100
// keys per group, 10 policies per group), so what changes is only the size
// of everything else. Two mixes of callers: the same 100 at every size (the
// work per request, which must not grow), and callers drawn from all keys
// (the same work plus the cache misses of touching 20,000 different ones).
//
// Build first (`npm run build`). Environment: BENCH_LOOKUPS, requests per
// pass (default 20000); each size is measured over 7 passes.
import os from "node:os";
import { ConfigStore } from "../apps/gateway/dist/config-store.js";
import { Authenticator, subjectOf } from "../apps/gateway/dist/identity.js";
import { generateSecret, hashSecret } from "../packages/core/dist/index.js";
import { seededRandom } from "./lib/random.mjs";
import { formatTable } from "./lib/report.mjs";
import { median } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS || 20_000);
const ROUNDS = 7;
const SIZES = [
  { keys: 1_000, policies: 100 },
  { keys: 10_000, policies: 1_000 },
  { keys: 100_000, policies: 10_000 },
];
const KEYS_PER_GROUP = 100;
const POLICIES_PER_GROUP = 10;
const CONNECTIONS = Array.from({ length: 40 }, (_, index) => `gpu-pool-${index}`);
const GLOBS = ["*", "llama-3.1-*", "qwen2.5:*", "*-instruct*", "mistral-*"];

function configuration({ keys, policies }) {
  const rand = seededRandom(20261207);
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const groups = keys / KEYS_PER_GROUP;
  const secrets = [];
  const apiKeys = [];
  for (let index = 0; index < keys; index++) {
    const secret = generateSecret("mg_");
    secrets.push(secret);
    apiKeys.push({
      id: `00000000-0000-4000-8000-${String(index).padStart(12, "0")}`,
      name: `key-${index}`,
      groups: [`team-${index % groups}`],
      keyHash: hashSecret(secret),
      expiresAt: 0,
    });
  }
  const policyMessages = Array.from({ length: policies }, (_, index) => ({
    id: `10000000-0000-4000-8000-${String(index).padStart(12, "0")}`,
    name: `policy-${index}`,
    revision: 1,
    definitionJson: JSON.stringify({
      subjects: { groups: [`team-${Math.floor(index / POLICIES_PER_GROUP) % groups}`] },
      resources: [{ connection: pick(CONNECTIONS), models: [pick(GLOBS)] }],
      operations: ["inference", "models.list"],
      limits: { maxTokens: 4096 },
    }),
  }));
  return {
    secrets,
    snapshot: {
      epoch: "bench",
      revision: 1,
      connections: [],
      agents: [],
      apiKeys,
      policies: policyMessages,
      approvals: [],
    },
    // A connection one of the key's group's policies grants (the group's
    // policies are POLICIES_PER_GROUP in a row), so most requests are allowed.
    connectionOf: (index) =>
      JSON.parse(policyMessages[(index % groups) * POLICIES_PER_GROUP + (index % POLICIES_PER_GROUP)].definitionJson)
        .resources[0].connection,
  };
}

/** A request head as Node hands it to the gateway, for one presented key. */
const requestWith = (secret) => ({
  rawHeaders: ["Authorization", `Bearer ${secret}`],
  headers: { authorization: `Bearer ${secret}` },
});

const rows = [];
for (const size of SIZES) {
  const { secrets, snapshot, connectionOf } = configuration(size);
  const store = new ConfigStore();
  const applyStarted = performance.now();
  store.applySnapshot(snapshot);
  const applyMs = performance.now() - applyStarted;
  const authenticator = new Authenticator(store, undefined);
  const rand = seededRandom(7);
  const everyone = Array.from({ length: LOOKUPS }, () => Math.floor(rand() * size.keys));
  // The same 100 callers at every size (their indexes exist in every size).
  const active = Array.from({ length: 100 }, (_, n) => Math.floor((n * 997) % 1_000));
  const few = Array.from({ length: LOOKUPS }, () => active[Math.floor(rand() * active.length)]);
  rows.push({
    ...size,
    applyMs,
    active: await measure(store, authenticator, secrets, connectionOf, few),
    spread: await measure(store, authenticator, secrets, connectionOf, everyone),
  });
}

/**
 * Means over whole passes (a lookup takes a microsecond or two, near the
 * clock's resolution and far below a collection's pause), median of ROUNDS.
 */
async function measure(store, authenticator, secrets, connectionOf, picks) {
  const body = { model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hello" }], max_tokens: 256 };
  const requests = picks.map((index) => requestWith(secrets[index]));
  const evaluations = picks.map((index) => ({
    connection: connectionOf(index),
    model: body.model,
    operation: "inference",
    format: "openai.chat",
    body,
  }));
  const subjects = [];
  for (const req of requests) subjects.push(subjectOf(await authenticator.authenticate(req)));
  const allowed = subjects.filter(
    (subject, i) => store.policies.evaluate(subject, evaluations[i]).decision === "allowed",
  ).length;
  const authenticateNs = [];
  const evaluateNs = [];
  for (let round = 0; round < ROUNDS; round++) {
    let started = performance.now();
    for (let i = 0; i < LOOKUPS; i++) await authenticator.authenticate(requests[i]);
    authenticateNs.push(((performance.now() - started) * 1e6) / LOOKUPS);
    started = performance.now();
    for (let i = 0; i < LOOKUPS; i++) store.policies.evaluate(subjects[i], evaluations[i]);
    evaluateNs.push(((performance.now() - started) * 1e6) / LOOKUPS);
  }
  return { authenticateNs: median(authenticateNs), evaluateNs: median(evaluateNs), allowed: allowed / LOOKUPS };
}

out("");
out(
  `modelgate lookup scaling: ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model}), Node ${process.version}; ` +
    `${LOOKUPS} requests per pass, median of ${ROUNDS} passes; ns per request`,
);
out("");
out(
  formatTable(
    [
      "API keys",
      "policies",
      "snapshot applied ms",
      "100 callers: authenticate ns",
      "evaluate ns",
      "all callers: authenticate ns",
      "evaluate ns",
      "allowed",
    ],
    rows.map((row) => [
      row.keys.toLocaleString("en"),
      row.policies.toLocaleString("en"),
      row.applyMs.toFixed(0),
      row.active.authenticateNs.toFixed(0),
      row.active.evaluateNs.toFixed(0),
      row.spread.authenticateNs.toFixed(0),
      row.spread.evaluateNs.toFixed(0),
      `${(row.spread.allowed * 100).toFixed(0)} %`,
    ]),
  ),
);
const first = rows[0];
const last = rows.at(-1);
const growth = (pick) => pick(last) / pick(first);
out("");
out(
  formatTable(
    ["goal (issue 16)", "measured", "result"],
    [
      [
        "key lookup O(1): the same callers at 100,000 keys within 1.5× of 1,000",
        `${growth((row) => row.active.authenticateNs).toFixed(2)}× (all callers: ${growth((row) => row.spread.authenticateNs).toFixed(2)}×)`,
        growth((row) => row.active.authenticateNs) <= 1.5 ? "PASS" : "FAIL",
      ],
      [
        "policy evaluation O(1): the same callers at 10,000 policies within 1.5× of 100",
        `${growth((row) => row.active.evaluateNs).toFixed(2)}× (all callers: ${growth((row) => row.spread.evaluateNs).toFixed(2)}×)`,
        growth((row) => row.active.evaluateNs) <= 1.5 ? "PASS" : "FAIL",
      ],
    ],
  ),
);
