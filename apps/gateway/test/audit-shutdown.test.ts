// A request cut off when the gateway's grace period runs out is still
// recorded: close() waits for its handler to unwind and hand the record
// over before the audit buffer is flushed and closed.
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

it("records the request its shutdown cut off", async () => {
  const pending = fetch(`${stack.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.apiKey}`,
      "content-type": "application/json",
      // The runtime takes 3 s to answer: no byte has reached the client when the grace period ends.
      "x-fixture-delay-ms": "3000",
    },
    body: JSON.stringify({ model: "llama/demo-chat", stream: true, messages: [{ role: "user", content: "long" }] }),
  });
  const reading = pending.catch((error: unknown) => error);
  await waitFor(() => runtime.inFlight() === 1, { what: "the request at the runtime" });
  await stack.gateway.close(200);
  // The client saw the connection cut, not an answer.
  expect(await reading).toHaveProperty("name", "TypeError");
  const decision = stack.logs.gateway.map((line) => JSON.parse(line)).find((entry) => entry.msg === "decision");
  const sessionId = decision?.sessionId;

  let session: { status: number; body: { decision: string; details: { error?: { code: string } } } } | undefined;
  await waitFor(
    async () => {
      session = await stack.admin("GET", `/sessions/${sessionId}`);
      return session.status === 200;
    },
    { timeoutMs: 10_000, what: "the cut-off request's session" },
  );
  expect(session?.body.decision).toBe("allowed");
  expect(session?.body.details.error?.code).toBe("client_gone");
  expect(stack.logs.gateway.some((line) => line.includes("lost"))).toBe(false);
});
