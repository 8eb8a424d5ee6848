// The refusal brake through the real gateway: a caller refused again and
// again is answered slower, holding nothing but its socket, while other
// callers are served at once; every refusal keeps its status and its audit
// session; a draining gateway answers the refusals it holds back at once.
import { request } from "node:http";
import { type Stack, startStack, waitFor } from "./stack.js";

const BURST = 10;
const PER_SECOND = 1;
// Long enough that "answered when the gateway closed" cannot be "the delay ran out".
const MAX_DELAY_MS = 60_000;

let stack: Stack;
let zeroGrantKey: string;

beforeAll(async () => {
  stack = await startStack({ refusalBrake: { burst: BURST, perSecond: PER_SECOND, maxDelayMs: MAX_DELAY_MS } });
  const runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
  const created = await stack.admin("POST", "/api-keys", { name: "no-grants", groups: ["nobody"] });
  zeroGrantKey = created.body.key as string;
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

interface Answer {
  status: number;
  session: string;
  body: string;
}

/** One chat request on a connection of its own. */
function chat(authorization: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${stack.gateway.url}/v1/chat/completions`,
      { method: "POST", agent: false, headers: { authorization, "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, session: String(res.headers["x-modelgate-session"] ?? ""), body }),
        );
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "hello" }] }));
  });
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

describe("the refusal brake", () => {
  let held: Promise<Answer>[] = [];

  it("answers a caller's refusals at once within its burst, then holds further ones back; other callers are served at once", async () => {
    const withinBurst = [];
    for (let i = 0; i < BURST; i++) withinBurst.push(await chat(`Bearer ${zeroGrantKey}`));
    expect(withinBurst.map((answer) => answer.status)).toEqual(Array(BURST).fill(403));
    expect(await metric("modelgate_refusals_delayed_total")).toBe(0);

    // Past the burst: each further refusal waits for the budget to earn it back.
    held = Array.from({ length: 20 }, () => chat(`Bearer ${zeroGrantKey}`));
    await waitFor(async () => (await metric("modelgate_refusals_delayed_total")) === 20, {
      what: "20 refusals held back",
    });
    // Owing 1 to 20 seconds of refills, none is answered yet.
    expect(await metric("modelgate_refusals_delaying")).toBeGreaterThanOrEqual(19);
    // Nothing but sockets is held: no in-flight place, no audit place.
    expect(stack.gateway.audit.status().reserved).toBe(0);

    // Another key is served, and so is the same address without a
    // credential the first time (refusals are charged to the subject).
    const served = await chat(`Bearer ${stack.apiKey}`);
    expect(served.status).toBe(200);
    const unauthenticated = await chat("Bearer mg_not-a-key");
    expect(unauthenticated.status).toBe(401);

    // The first held refusal owed a second of refills: it is answered.
    const first = await Promise.race(held);
    expect(first.status).toBe(403);
    expect(JSON.parse(first.body).error.code).toBe("model_not_allowed");
  }, 30_000);

  it("answers every held refusal when the gateway drains, long before their delays run out, each with its audit session", async () => {
    await stack.gateway.close(1_000);
    const answers = await Promise.all(held);
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(403));
    await waitFor(
      async () => {
        for (const answer of answers) {
          const session = await stack.admin("GET", `/sessions/${answer.session}`);
          if (session.status !== 200) return false;
          expect(session.body.responseStatus).toBe(403);
        }
        return true;
      },
      { what: "the held refusals' sessions" },
    );
  }, 30_000);
});
