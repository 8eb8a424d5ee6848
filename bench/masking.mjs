#!/usr/bin/env node
// Masking engine micro-benchmark: what @modelgate/masking costs the agent.
// Generates model-like output (prose, lists, a little code, about one
// personal-data value or secret per 500 characters, of every kind) from a
// fixed seed and measures, on one core:
//
// - whole-text masking throughput (MB/s), as for a non-streamed answer;
// - streamed masking throughput, the same text pushed in chunks of 1-8
//   words, as a runtime streams tokens;
// - the latency of one push for chunks with no PII candidate (what
//   streaming masking adds to time-to-first-token for ordinary text).
//
// Runs the built package: `../../scripts/with-node.sh npx tsc -p tsconfig.build.json`
// in packages/masking first, then `scripts/with-node.sh node bench/masking.mjs`.
// Environment: BENCH_ROUNDS (default 7), BENCH_MB (default 4, text size).
import { readFileSync } from "node:fs";
import os from "node:os";
import { Masker } from "../packages/masking/dist/index.js";
import { seededRandom } from "./lib/random.mjs";
import { median, summarize } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 7);
const SIZE = Number(process.env.BENCH_MB || 4) * 1_000_000;
const PII_EVERY = 500;

const rand = seededRandom(20261127);
const pick = (list) => list[Math.floor(rand() * list.length)];

const WORDS = (
  "the model answers questions about quarterly revenue forecasts customer churn and infrastructure costs " +
  "while summarising long reports for the data science team in clear plain language we recommend that " +
  "you review the deployment before Friday because latency increased after the last release of version " +
  "3.2.1 which changed the cache settings see section 4 for details and note: the results are preliminary"
).split(" ");
const PUNCTUATION = [" ", " ", " ", " ", " ", ", ", ". ", ".\n", "\n\n- ", ": ", " (", ") "];
const CODE = [
  "```js\nconst total = items.reduce((sum, item) => sum + item.price, 0);\n```\n",
  "```sh\ncurl -s https://api.internal/v1/status | jq .ready\n```\n",
  "| quarter | revenue | growth |\n| --- | ---: | ---: |\n| Q1 | 1,204 | 3.1% |\n| Q2 | 1,388 | 15.3% |\n",
];
const PII = [
  () => `${pick(["jane.doe", "ops", "m.rossi", "support+eu"])}@${pick(["example.com", "corp.example.co.uk"])}`,
  () => pick(["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"]),
  () => pick(["(415) 555-0100", "+44 20 7946 0958", "020 7946 0958", "+1 212 555 0147"]),
  () => pick(["123-45-6789", "219 09 9999"]),
  () => pick(["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"]),
  () => pick(["10.20.30.40", "192.168.1.254", "2001:db8::8a2e:370:7334"]),
  () =>
    pick([
      "AKIAIOSFODNN7EXAMPLE",
      "ghp_0123456789abcdefghijABCDEFGHIJ012345",
      "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      "password=hunter2",
    ]),
  () => `EMP-${String(Math.floor(rand() * 1e6)).padStart(6, "0")}`,
];

/** Model-like output of `size` characters with one PII value per `PII_EVERY` characters on average. */
function modelOutput(size, withPii) {
  const parts = [];
  let length = 0;
  let nextPii = Math.floor(rand() * 2 * PII_EVERY);
  while (length < size) {
    let part;
    if (withPii && length >= nextPii) {
      part = pick(PII)();
      nextPii = length + Math.floor(rand() * 2 * PII_EVERY);
    } else if (withPii && rand() < 0.002) {
      part = pick(CODE);
    } else {
      part = pick(WORDS);
    }
    part += pick(PUNCTUATION);
    parts.push(part);
    length += part.length;
  }
  return parts.join("");
}

/** Cuts a text into chunks of 1-8 words, as a runtime streams tokens. */
function chunked(text) {
  const words = text.split(/(?<= )/);
  const chunks = [];
  for (let index = 0; index < words.length; ) {
    const count = 1 + Math.floor(rand() * 8);
    chunks.push(words.slice(index, index + count).join(""));
    index += count;
  }
  return chunks;
}

const profile = {
  entities: ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET"],
  custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }],
  denyList: [{ name: "PROJECT", terms: ["Project Falcon", "Blue Heron"] }],
  style: "label",
  fields: [],
  onError: "block",
  maskPromptsInAudit: false,
};
const masker = new Masker(profile);
const text = modelOutput(SIZE, true);
const chunks = chunked(text);
const masked = masker.maskText(text);
const found = Object.values(masked.counts).reduce((sum, count) => sum + count, 0);

// Correctness first: the streamed result must equal the whole-text one.
{
  const stream = masker.createStream();
  let streamed = "";
  for (const chunk of chunks) streamed += stream.push(chunk);
  streamed += stream.end();
  if (streamed !== masked.text) throw new Error("streamed masking differs from whole-text masking");
}

const megabytes = text.length / 1e6;
// The hash style computes an HMAC per value; the key is per session in the agent.
const hashing = new Masker({ ...profile, style: "hash" }, { hashKey: new Uint8Array(32).fill(7) });
function wholeRound(masking = masker) {
  const started = performance.now();
  masking.maskText(text);
  return megabytes / ((performance.now() - started) / 1000);
}
function streamRound() {
  const started = performance.now();
  const stream = masker.createStream();
  for (const chunk of chunks) stream.push(chunk);
  stream.end();
  return megabytes / ((performance.now() - started) / 1000);
}

// Ordinary text (no digits, no `@`, no secret prefixes) streamed two ways:
// chunks of 1-8 words that end at a space, and one word per chunk with its
// leading space, as OpenAI-style tokenizers cut text. A chunk that ends in
// a word holds that word back until the next chunk: it could still be the
// start of an email address.
const plainText = modelOutput(200_000, false).replace(/[0-9.]+/g, "x");
const plainChunks = {
  words: chunked(plainText),
  tokens: plainText.match(/\s*\S+/g),
};
function latencyRound(chunks) {
  const stream = masker.createStream();
  const samples = new Float64Array(chunks.length);
  const held = new Float64Array(chunks.length);
  let immediate = 0;
  for (let index = 0; index < chunks.length; index++) {
    const started = performance.now();
    stream.push(chunks[index]);
    samples[index] = (performance.now() - started) * 1000;
    held[index] = stream.held;
    if (stream.held === 0) immediate++;
  }
  stream.end();
  return { ...summarize(samples), held: summarize(held), immediate: immediate / chunks.length };
}

/** Busy CPU time of the whole machine, in clock ticks (Linux), to tell a quiet run from a shared one. */
function machineBusy() {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return {
      busy: fields.reduce((sum, value) => sum + value, 0) - idle,
      all: fields.reduce((sum, value) => sum + value, 0),
    };
  } catch {
    return undefined;
  }
}

// Warm-up: let V8 optimise before measuring.
wholeRound();
wholeRound(hashing);
streamRound();
latencyRound(plainChunks.words);
latencyRound(plainChunks.tokens);
const before = machineBusy();
const cpuBefore = process.cpuUsage();
const whole = Array.from({ length: ROUNDS }, () => wholeRound());
const wholeHash = Array.from({ length: ROUNDS }, () => wholeRound(hashing));
const streamed = Array.from({ length: ROUNDS }, streamRound);
const latency = Array.from({ length: ROUNDS }, () => latencyRound(plainChunks.words));
const tokenLatency = Array.from({ length: ROUNDS }, () => latencyRound(plainChunks.tokens));
const after = machineBusy();
const ownTicks = (() => {
  const used = process.cpuUsage(cpuBefore);
  return ((used.user + used.system) / 1e6) * 100;
})();

const cpu = os.cpus()[0]?.model ?? "unknown";
out(
  `masking: ${megabytes.toFixed(1)} MB of model output, ${found} values masked (one per ${Math.round(text.length / found)} characters)`,
);
out(
  `         ${Object.entries(masked.counts)
    .map(([name, count]) => `${name} ${count}`)
    .join(", ")}`,
);
out(`machine: ${os.cpus().length} CPUs (${cpu}), Node ${process.version}, ${ROUNDS} rounds, one core`);
if (before !== undefined && after !== undefined) {
  const others = (100 * (after.busy - before.busy - ownTicks)) / (after.all - before.all);
  out(`         CPU busy outside this process during the rounds: ${others.toFixed(0)} % of the machine`);
}
out("");
out("round  whole MB/s  streamed MB/s  push p50 µs  push p99 µs  token push p50 µs  token push p99 µs");
for (let index = 0; index < ROUNDS; index++) {
  const cells = [
    whole[index].toFixed(1).padStart(10),
    streamed[index].toFixed(1).padStart(13),
    latency[index].p50.toFixed(2).padStart(11),
    latency[index].p99.toFixed(2).padStart(11),
    tokenLatency[index].p50.toFixed(2).padStart(17),
    tokenLatency[index].p99.toFixed(2).padStart(17),
  ];
  out(`${String(index + 1).padStart(5)}  ${cells.join("  ")}`);
}
out("");
const at = (list, key) => median(list.map((round) => round[key])).toFixed(2);
out(
  `whole text: median ${median(whole).toFixed(1)} MB/s (target >= 50 MB/s); hash style ${median(wholeHash).toFixed(1)} MB/s`,
);
out(`streamed (${chunks.length} chunks of 1-8 words): median ${median(streamed).toFixed(1)} MB/s`);
for (const [label, rounds, count] of [
  ["1-8 words ending at a space", latency, plainChunks.words.length],
  ["one word with its leading space", tokenLatency, plainChunks.tokens.length],
]) {
  const first = rounds[0];
  out(
    `push, text without PII (${label}, ${count} chunks): p50 ${at(rounds, "p50")} µs, p99 ${at(rounds, "p99")} µs; ` +
      `nothing held after ${(100 * first.immediate).toFixed(0)} % of pushes, held p50 ${first.held.p50} / max ${first.held.max} characters`,
  );
}
