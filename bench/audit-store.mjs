#!/usr/bin/env node
// Audit store throughput: records per second the control plane's session
// store writes to Postgres, each record in its own transaction (maxBatch 1)
// against concurrent writes coalesced into batches (the default, up to 100
// records per transaction), every record appended to the hash chain either
// way. `concurrency` is how many writes are in flight at once, as the audit
// worker's BullMQ concurrency sets it in production (64 in server.ts; 8 is
// the worker's own default).
//
// Runs the built code: `npm run build` first, then `npm run bench:audit-store`.
// Needs the Postgres tests use (DATABASE_URL, else 127.0.0.1:5432); each
// round writes into a fresh database, dropped afterwards.
// Environment: BENCH_ROUNDS (default 5), BENCH_RECORDS (default 2000).
import os from "node:os";
import { verifyChain } from "../apps/control-plane/dist/features/audit-integrity/verify.js";
import { createSessionStore } from "../apps/control-plane/dist/features/sessions/store.js";
import { uuidv7 } from "../packages/core/dist/index.js";
import { createDatabaseClient } from "../packages/db/dist/index.js";
import { createTestDatabase } from "../packages/db/dist/testing.js";
import { cpuMsOfProcessesNamed } from "./lib/processes.mjs";
import { median } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5);
const RECORDS = Number(process.env.BENCH_RECORDS || 2000);

const MODES = [
  { label: "single (maxBatch 1), concurrency 8", maxBatch: 1, concurrency: 8 },
  { label: "single (maxBatch 1), concurrency 64", maxBatch: 1, concurrency: 64 },
  { label: "batched, concurrency 8", maxBatch: 100, concurrency: 8 },
  { label: "batched, concurrency 64", maxBatch: 100, concurrency: 64 },
];

const PROMPT = JSON.stringify({
  model: "llama-3.1-8b-instruct",
  messages: [{ role: "user", content: "Summarise the quarterly report. ".repeat(30) }],
});
const CHUNKS = Array.from(
  { length: 12 },
  (_, index) => `data: {"choices":[{"delta":{"content":"token ${index} of the answer "}}]}\n\n`,
);

/** A typical streamed chat record: ~1 KB prompt, ~700 B answer in 12 events. */
function record(index) {
  const at = Date.parse("2026-11-01T00:00:00.000Z") + index * 10;
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-bench",
    receivedAt: new Date(at).toISOString(),
    firstByteAt: new Date(at + 40).toISOString(),
    finishedAt: new Date(at + 900).toISOString(),
    subject: {
      id: `user-${index % 50}`,
      email: `user${index % 50}@example.com`,
      groups: ["staff"],
      authMethod: "oidc",
    },
    clientIp: "10.0.0.7",
    userAgent: "OpenAI/Python 1.99",
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    operation: "inference",
    decision: "allowed",
    policyIds: ["01900000-0000-7000-8000-000000000001"],
    capped: [],
    responseStatus: 200,
    latencyMs: 900,
    ttfbMs: 40,
    usage: { prompt_tokens: 250, completion_tokens: 60 },
    request: { text: PROMPT, truncated: false, bytes: PROMPT.length },
    responseContentType: "text/event-stream; charset=utf-8",
    response: { text: CHUNKS.join(""), truncated: false, bytes: 400 },
    events: CHUNKS.map((data, seq) => ({ offsetMs: 40 + seq * 70, data })),
  };
}

async function runOnce({ maxBatch, concurrency }) {
  const database = await createTestDatabase();
  const db = createDatabaseClient({ databaseUrl: database.url, maxConnections: 10 });
  try {
    const store = createSessionStore({ db, maxBatch });
    const records = Array.from({ length: RECORDS }, (_, index) => record(index));
    let next = 0;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const postgresBefore = cpuMsOfProcessesNamed("postgres");
    // `concurrency` writers, each awaiting its write before taking the next record, like worker slots.
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < records.length) {
          const item = records[next];
          next += 1;
          if ((await store.write(item)) !== "stored") throw new Error("a fresh record came back duplicate");
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const postgresMs = cpuMsOfProcessesNamed("postgres") - postgresBefore;
    const report = await verifyChain(db);
    if (report.status !== "ok" || report.checked !== RECORDS)
      throw new Error(`chain did not verify: ${JSON.stringify(report)}`);
    return {
      rate: RECORDS / seconds,
      // CPU per record: this process (the store: Prisma, pg, hashing) and every Postgres process.
      storeUs: (cpu.user + cpu.system) / RECORDS,
      postgresUs: (postgresMs * 1000) / RECORDS,
    };
  } finally {
    await db.$disconnect();
    await database.drop();
  }
}

out(`audit store: ${RECORDS} records per round, ${ROUNDS} rounds per mode (plus one warm-up)`);
out(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), ${new Date().toISOString()}`);
await runOnce({ maxBatch: 100, concurrency: 8 });
const results = MODES.map((mode) => ({ mode, rates: [], storeUs: [], postgresUs: [] }));
// Modes take turns round by round, so a noisy stretch of the shared machine
// does not land on one mode only.
for (let round = 0; round < ROUNDS; round += 1) {
  for (const result of results) {
    const { rate, storeUs, postgresUs } = await runOnce(result.mode);
    result.rates.push(rate);
    result.storeUs.push(storeUs);
    result.postgresUs.push(postgresUs);
  }
}
for (const { mode, rates, storeUs, postgresUs } of results) {
  out(
    `${mode.label.padEnd(40)} median ${median(rates).toFixed(0).padStart(6)} records/s  (rounds: ${rates.map((rate) => rate.toFixed(0)).join(", ")}); ` +
      `CPU per record: store ${median(storeUs).toFixed(0)} µs, Postgres ${median(postgresUs).toFixed(0)} µs`,
  );
}
const single = median(results[1].rates);
const batched = median(results[3].rates);
out(`batched/single at concurrency 64: ${(batched / single).toFixed(1)}x`);
