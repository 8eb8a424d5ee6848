// Draining must not cost the requests it waits for: every request running
// when the agent starts draining arrives complete, whether its answer is one
// message or a stream, small or megabytes.
import { type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ upstreamTimeoutMs: 20_000 });
});

afterAll(async () => {
  await stack?.close();
});

// 200 KB: several 64 KiB frames per answer, light enough for a loaded CI machine.
const ANSWER = "word ".repeat(40_000);

it.each([
  ["a 200 KB JSON answer", "json", false],
  ["a streamed answer", "sse", true],
])(
  "every in-flight request finishes complete while the agent drains: %s",
  async (_label, name, stream) => {
    const runtime = await stack.addConnection(name, { fixture: { completionText: ANSWER } });
    const agent = await stack.addAgent(name, runtime, { capacity: 8 });
    const body = JSON.stringify({ model: `${name}/demo-chat`, messages: [{ role: "user", content: "x" }], stream });
    const outcomes = Array.from({ length: 8 }, async () => {
      const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${stack.apiKey}`,
          "content-type": "application/json",
          "x-fixture-delay-ms": "300",
          "x-fixture-chunks": "200",
          "x-fixture-interval-ms": "0",
        },
        body,
      });
      const text = await response.text();
      if (response.status !== 200) return `HTTP ${response.status}`;
      if (stream) {
        // The whole stream, including anything after [DONE]: an error event
        // appended to a cut stream must not go unnoticed.
        return text.trimEnd().endsWith("data: [DONE]") && !text.includes('"error"') ? "complete" : text.slice(-200);
      }
      const content = (JSON.parse(text) as { choices: { message: { content: string } }[] }).choices[0]?.message.content;
      return content === ANSWER ? "complete" : `short: ${content?.length}`;
    });
    await waitFor(() => runtime.inFlight() === 8, { what: "all 8 requests at the runtime" });
    const drained = agent.agent?.drain(10_000);
    expect(await Promise.all(outcomes)).toEqual(Array(8).fill("complete"));
    expect(await drained).toBe(true);
  },
  30_000,
);
