import { describe, expect, it } from "@jest/globals";
import { API_FIELDS, DEFAULT_FIELDS } from "../src/response-fields.js";
import { createResponseMasker } from "../src/response-masker.js";
import {
  CHAT_ID,
  CREATED,
  chatChunk,
  chatContent,
  chatStream,
  cutBytes,
  DONE_FRAME,
  deltaChoice,
  EMAIL,
  frameChunks,
  LABEL,
  MODEL,
  run,
  sseData,
  sseFrame,
  WordMasker,
} from "./response-helpers.js";

const SSE = "text/event-stream; charset=utf-8";
const openai = { contentType: SSE, fields: DEFAULT_FIELDS.openai };

describe("OpenAI chat streams", () => {
  const contents = ["Hello ", "world. Write to jo", "hn@ex", "ample.com", " today."];
  const frames = chatStream(contents);

  it("masks an email split across three deltas", () => {
    const { body, outputs, counts } = run(frameChunks(frames), openai);
    expect(chatContent(body)).toBe(`Hello world. Write to ${LABEL} today.`);
    expect(chatContent(body)).toBe(new WordMasker().maskText(contents.join("")).text);
    for (const output of outputs) expect(output).not.toContain("john");
    expect(counts).toEqual({ EMAIL: 1 });
  });

  it("releases each event when it arrives, holding back only what could start a match", () => {
    const { outputs } = run(frameChunks(frames), openai);
    // One output per pushed frame, then end's.
    expect(outputs).toHaveLength(frames.length + 1);
    const contentOf = (output: string) => chatContent(output);
    expect(outputs[0]).toBe(frames[0]);
    expect(outputs[1]).toBe(frames[1]);
    expect(contentOf(outputs[2] as string)).toBe("world. Write to ");
    expect(contentOf(outputs[3] as string)).toBe("");
    expect(contentOf(outputs[4] as string)).toBe(LABEL);
    expect(outputs[5]).toBe(frames[5]);
    expect(outputs.at(-1)).toBe("");
  });

  it("keeps every event valid JSON with the runtime's other fields as sent, and [DONE] last", () => {
    const { body } = run(frameChunks(frames), openai);
    const data = sseData(body);
    expect(data.at(-1)).toBe("[DONE]");
    expect(data).toHaveLength(frames.length);
    for (const event of data.slice(0, -1)) {
      expect(event).toMatchObject({ id: CHAT_ID, object: "chat.completion.chunk", created: CREATED, model: MODEL });
    }
    expect(sseData(body)[4]).toEqual({
      id: CHAT_ID,
      object: "chat.completion.chunk",
      created: CREATED,
      model: MODEL,
      choices: [{ index: 0, delta: { content: LABEL }, logprobs: null, finish_reason: null }],
    });
  });

  it("flushes held text in a copy of the last content event, before the finish_reason chunk", () => {
    const { body, outputs } = run(frameChunks(chatStream(["Ask jo"])), openai);
    const data = sseData(body);
    expect(data).toHaveLength(5);
    expect(data[1]).toMatchObject({ choices: [{ delta: { content: "Ask " }, finish_reason: null }] });
    // The copy: same id, model, object, created; the held text; finish_reason as in the copied event.
    expect(data[2]).toEqual({
      id: CHAT_ID,
      object: "chat.completion.chunk",
      created: CREATED,
      model: MODEL,
      choices: [{ index: 0, delta: { content: "jo" }, logprobs: null, finish_reason: null }],
    });
    expect(data[3]).toMatchObject({ choices: [{ delta: {}, finish_reason: "stop" }] });
    expect(data[4]).toBe("[DONE]");
    // Released together with the finish chunk, not earlier.
    expect(chatContent(outputs[2] as string)).toBe("jo");
    expect(chatContent(body)).toBe("Ask jo");
  });

  it("flushes before [DONE] when no chunk finishes the choice", () => {
    const frames = [chatChunk([deltaChoice({ content: "to john@ex" })]), DONE_FRAME];
    const { body } = run(frameChunks(frames), openai);
    const data = sseData(body);
    expect(data.map((event) => (event === "[DONE]" ? event : chatContent(sseFrame(event))))).toEqual([
      "to ",
      "john@ex",
      "[DONE]",
    ]);
  });

  it("flushes at the end when the stream stops without [DONE]", () => {
    const frames = [chatChunk([deltaChoice({ content: "to john@exa" })])];
    const { outputs } = run(frameChunks(frames), openai);
    expect(chatContent(outputs[0] as string)).toBe("to ");
    expect(chatContent(outputs[1] as string)).toBe("john@exa");
  });

  it("puts held text into a finishing chunk that carries content itself", () => {
    const frames = [
      chatChunk([deltaChoice({ content: "Mail jo" })]),
      chatChunk([deltaChoice({ content: "hn" }, "length")]),
      DONE_FRAME,
    ];
    const { body } = run(frameChunks(frames), openai);
    const data = sseData(body);
    expect(data).toHaveLength(3);
    expect(data[1]).toMatchObject({ choices: [{ delta: { content: "john" }, finish_reason: "length" }] });
  });

  it("gives the same result whatever the chunk boundaries, also inside multi-byte characters", () => {
    const frames = chatStream(["Grüße, ", "schreib jo", "hn@example.c", "om 🙂 danke"]);
    const whole = frames.join("");
    const expected = run(frameChunks(frames), openai).body;
    expect(chatContent(expected)).toBe(`Grüße, schreib ${LABEL} 🙂 danke`);
    const length = new TextEncoder().encode(whole).length;
    for (let offset = 1; offset < length; offset += 1) {
      expect(run(cutBytes(whole, [offset]), openai).body).toBe(expected);
    }
    const everyByte = Array.from({ length: length - 1 }, (_, index) => index + 1);
    expect(run(cutBytes(whole, everyByte), openai).body).toBe(expected);
  });

  it("never releases more than the current event: an event split across pushes waits for its end", () => {
    const frame = chatChunk([deltaChoice({ content: "plain text" })]);
    const [first, second] = cutBytes(frame, [20]) as [Uint8Array, Uint8Array];
    const responseMasker = createResponseMasker(new WordMasker(), openai);
    expect(responseMasker.push(first)).toHaveLength(0);
    expect(new TextDecoder().decode(responseMasker.push(second))).toBe(frame);
  });

  it("keeps CRLF framing, event and id lines, and comments", () => {
    const data = (content: string) =>
      JSON.stringify({ id: CHAT_ID, choices: [{ index: 0, delta: { content }, finish_reason: null }] });
    const body = [
      ": keep-alive\r\n\r\n",
      `event: message\r\nid: 7\r\ndata: ${data("mail john@")}\r\n\r\n`,
      `event: message\r\nid: 8\r\ndata: ${data("example.com!")}\r\n\r\n`,
      "data: [DONE]\r\n\r\n",
    ];
    const { outputs } = run(frameChunks(body), openai);
    expect(outputs[0]).toBe(body[0]);
    expect(outputs[1]).toBe(`event: message\r\nid: 7\r\ndata: ${data("mail ")}\r\n\r\n`);
    expect(outputs[2]).toBe(`event: message\r\nid: 8\r\ndata: ${data(`${LABEL}!`)}\r\n\r\n`);
    expect(outputs[3]).toBe(body[3]);
  });

  it("reads CRLF and bare CR framing cut anywhere, a CR at a cut included", () => {
    for (const end of ["\r\n", "\r"]) {
      const frames = chatStream(["mail jo", "hn@example.com"]).map((frame) => frame.replaceAll("\n", end));
      const whole = frames.join("");
      const expected = run(frameChunks(frames), openai).body;
      expect(chatContent(expected.replaceAll(end, "\n"))).toBe(`mail ${LABEL}`);
      for (let offset = 1; offset < whole.length; offset += 1) {
        expect(run(cutBytes(whole, [offset]), openai).body).toBe(expected);
      }
    }
  });

  it("reads data split over several lines and writes it back as one", () => {
    const event = `id: 1\ndata: {"id":"x","choices":[{"index":0,\ndata: "delta":{"content":"${EMAIL}"}}]}\n\n`;
    const { body } = run(frameChunks([event]), openai);
    expect(body).toBe(`id: 1\ndata: {"id":"x","choices":[{"index":0,"delta":{"content":"${LABEL}"}}]}\n\n`);
  });

  it("passes events without data, and the usage chunk, unchanged", () => {
    const frames = [
      "retry: 1000\n\n",
      chatChunk([deltaChoice({ content: "hi" })], null),
      chatChunk([], { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 }),
      DONE_FRAME,
    ];
    expect(run(frameChunks(frames), openai).outputs.slice(0, 4)).toEqual(frames);
  });

  it("leaves a field outside the configured paths alone", () => {
    const frame = sseFrame({
      id: CHAT_ID,
      system_fingerprint: EMAIL,
      choices: [{ index: 0, delta: { content: EMAIL }, finish_reason: null }],
    });
    const [event] = sseData(run(frameChunks([frame]), openai).body);
    expect(event).toMatchObject({ system_fingerprint: EMAIL, choices: [{ delta: { content: LABEL } }] });
  });

  it("keeps numbers' source text in a rewritten event", () => {
    const frame = `data: {"id":"x","created":1.0,"seed":12345678901234567891,"choices":[{"index":0,"delta":{"content":"${EMAIL}"},"finish_reason":null}]}\n\n`;
    expect(run(frameChunks([frame]), openai).body).toBe(frame.replace(EMAIL, LABEL));
  });

  it("masks reasoning as its own text", () => {
    const frames = [
      chatChunk([deltaChoice({ reasoning_content: "user is jo" })]),
      chatChunk([deltaChoice({ reasoning_content: "hn@example.com", content: "jo" })]),
      chatChunk([deltaChoice({ content: "hn" }, "stop")]),
    ];
    const data = sseData(run(frameChunks(frames), openai).body);
    const deltas = data.map((event) => (event as { choices: { delta: object }[] }).choices[0]?.delta);
    expect(deltas).toEqual([
      { reasoning_content: "user is " },
      { reasoning_content: LABEL, content: "" },
      { content: "john" },
    ]);
  });
});

describe("OpenAI tool calls and several choices", () => {
  const toolDelta = (index: number, args: string, head?: { id: string; name: string }) => ({
    index,
    ...(head ? { id: head.id, type: "function" } : {}),
    function: { ...(head ? { name: head.name } : {}), arguments: args },
  });

  it("follows each tool call by its index property, wherever it sits in the array", () => {
    const frames = [
      chatChunk([deltaChoice({ tool_calls: [toolDelta(0, "", { id: "call_a", name: "lookup" })] })]),
      chatChunk([deltaChoice({ tool_calls: [toolDelta(1, '{"to":"jo', { id: "call_b", name: "send" })] })]),
      chatChunk([deltaChoice({ tool_calls: [toolDelta(0, '{"q":"hn@example.com"}')] })]),
      chatChunk([deltaChoice({ tool_calls: [toolDelta(1, 'hn@example.com"}')] })]),
      chatChunk([deltaChoice({}, "tool_calls")]),
      DONE_FRAME,
    ];
    const { body, counts } = run(frameChunks(frames), openai);
    const args = new Map<number, string>();
    for (const event of sseData(body).slice(0, -1)) {
      const calls = (event as { choices: { delta: { tool_calls?: ReturnType<typeof toolDelta>[] } }[] }).choices[0]
        ?.delta.tool_calls;
      for (const call of calls ?? []) args.set(call.index, (args.get(call.index) ?? "") + call.function.arguments);
    }
    // Tool call 0 never held "jo": its text is its own.
    expect(args.get(0)).toBe('{"q":"hn@example.com"}');
    expect(args.get(1)).toBe(`{"to":"${LABEL}"}`);
    expect(counts).toEqual({ EMAIL: 1 });
  });

  it("keeps the choices of an n > 1 stream apart and finishes each on its own", () => {
    const frames = [
      chatChunk([deltaChoice({ content: "a jo" }, null, 0)]),
      chatChunk([deltaChoice({ content: "b jo" }, null, 1)]),
      chatChunk([deltaChoice({ content: "hn@example.com" }, null, 1)]),
      chatChunk([deltaChoice({}, "stop", 0)]),
      chatChunk([deltaChoice({}, "stop", 1)]),
      DONE_FRAME,
    ];
    const data = sseData(run(frameChunks(frames), openai).body).slice(0, -1) as {
      choices: { index: number; delta: { content?: string }; finish_reason: string | null }[];
    }[];
    const text = (index: number) =>
      data
        .flatMap((event) => event.choices.filter((choice) => choice.index === index))
        .map((choice) => choice.delta.content ?? "")
        .join("");
    expect(text(0)).toBe("a jo");
    expect(text(1)).toBe(`b ${LABEL}`);
    // Choice 0's held "jo" goes out before choice 0's finish chunk.
    const finish0 = data.findIndex((event) => event.choices[0]?.finish_reason === "stop");
    const flush0 = data.findIndex((event) => event.choices[0]?.index === 0 && event.choices[0]?.delta.content === "jo");
    expect(flush0).toBeGreaterThan(-1);
    expect(flush0).toBeLessThan(finish0);
  });

  it("empties other masked fields in a flush copy, so no text is sent twice", () => {
    const frames = [
      chatChunk([deltaChoice({ content: "one" }, null, 0), deltaChoice({ content: "two jo" }, null, 1)]),
      DONE_FRAME,
    ];
    const data = sseData(run(frameChunks(frames), openai).body);
    expect(data).toHaveLength(3);
    expect(data[1]).toMatchObject({
      choices: [
        { index: 0, delta: { content: "" } },
        { index: 1, delta: { content: "jo" } },
      ],
    });
  });
});

describe("OpenAI legacy completions", () => {
  const completion = (text: string, finishReason: string | null) =>
    sseFrame({
      id: "cmpl-fixture-1",
      object: "text_completion",
      created: CREATED,
      model: MODEL,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
    });

  it("masks `text` and puts held text into the finishing chunk", () => {
    const frames = [completion("reach jo", null), completion("hn@", null), completion("", "stop"), DONE_FRAME];
    const data = sseData(run(frameChunks(frames), openai).body) as ({ choices: { text: string }[] } | string)[];
    expect(data).toHaveLength(4);
    const texts = data.map((event) => (typeof event === "string" ? event : event.choices[0]?.text));
    expect(texts).toEqual(["reach ", "", "john@", "[DONE]"]);
  });
});

describe("TGI generate_stream", () => {
  // As TGI writes it: `data:` without a space, the whole text on the last event.
  const tgiStream = (chunks: readonly string[]) =>
    chunks.map((text, index) => {
      const last = index === chunks.length - 1;
      return `data:${JSON.stringify({
        index: index + 1,
        token: { id: index + 1, text, logprob: -0.25, special: false },
        generated_text: last ? chunks.join("") : null,
        details: last ? { finish_reason: "eos_token", generated_tokens: chunks.length, seed: null } : null,
        top_tokens: null,
      })}\n\n`;
    });
  const tgi = { contentType: "text/event-stream", fields: DEFAULT_FIELDS.tgi };

  interface TgiEvent {
    token: { text: string };
    generated_text: string | null;
  }

  it("streams token texts through one channel and masks generated_text whole", () => {
    const chunks = ["Mail ", "jo", "hn@example", ".com or jo"];
    const { body, outputs, counts } = run(frameChunks(tgiStream(chunks)), tgi);
    const events = sseData(body) as TgiEvent[];
    expect(events).toHaveLength(4);
    const whole = new WordMasker().maskText(chunks.join("")).text;
    expect(events.map((event) => event.token.text).join("")).toBe(whole);
    // The last event ends the stream: it carries what was held ("jo").
    expect(events[3]?.token.text).toBe(`${LABEL} or jo`);
    expect(events[3]?.generated_text).toBe(whole);
    expect(outputs.at(-1)).toBe("");
    // The whole text repeats the tokens: counted once.
    expect(counts).toEqual({ EMAIL: 1 });
    // Rewritten events keep TGI's `data:` spelling.
    expect(outputs[3]?.startsWith('data:{"index":4')).toBe(true);
  });

  it("counts generated_text when it is the only field masked", () => {
    const { counts, body } = run(frameChunks(tgiStream(["a ", EMAIL])), {
      contentType: "text/event-stream",
      fields: ["generated_text"],
    });
    expect(counts).toEqual({ EMAIL: 1 });
    expect((sseData(body)[1] as TgiEvent).token.text).toBe(EMAIL);
  });
});

describe("Anthropic Messages streams", () => {
  const messages = { contentType: SSE, fields: [...DEFAULT_FIELDS.openai, ...API_FIELDS["anthropic.messages"]] };
  const event = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const delta = (text: string, index = 0) =>
    event("content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text } });
  const frames = [
    event("message_start", {
      type: "message_start",
      message: { id: "msg_1", content: [], usage: { input_tokens: 3 } },
    }),
    event("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    delta("Write to jo"),
    delta("hn@exa"),
    delta("mple.com"),
    event("content_block_stop", { type: "content_block_stop", index: 0 }),
    event("content_block_start", { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }),
    delta("or to john@", 1),
    event("content_block_stop", { type: "content_block_stop", index: 1 }),
    event("message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } }),
    event("message_stop", { type: "message_stop" }),
  ];
  const texts = (body: string) =>
    (sseData(body) as { type: string; delta?: { text?: string } }[])
      .filter((data) => data.type === "content_block_delta")
      .map((data) => data.delta?.text ?? "");

  it("masks an email split across content_block_delta events, every event keeping its name", () => {
    const { body, outputs, counts } = run(frameChunks(frames), messages);
    expect(texts(body).join("")).toBe(`Write to ${LABEL}or to john@`);
    for (const output of outputs) expect(output).not.toContain("john@example");
    expect(counts).toEqual({ EMAIL: 1 });
    // Each event keeps its name line, which Anthropic's SDK dispatches on.
    const events = body.split("\n\n").filter(Boolean);
    expect(events.length).toBeGreaterThanOrEqual(frames.length);
    for (const raw of events) {
      const [name, data] = raw.split("\n");
      expect(name).toBe(`event: ${JSON.parse(data?.slice(6) ?? "").type}`);
    }
  });

  it("releases what a block still holds before its content_block_stop, in a copy of its last delta", () => {
    const { body } = run(frameChunks(frames), messages);
    const data = sseData(body) as { type: string; index?: number; delta?: { text?: string } }[];
    const stop = data.findIndex((entry) => entry.type === "content_block_stop" && entry.index === 1);
    // "john@" could have started an email: held until the block ended, then sent as block 1's.
    expect(data[stop - 1]).toEqual({
      type: "content_block_delta",
      index: 1,
      delta: { type: "text_delta", text: "john@" },
    });
  });

  it("masks the same whatever the cuts", () => {
    const whole = frames.join("");
    for (const cut of [1, 7, 50, 120, 333, whole.length - 3]) {
      expect(texts(run(cutBytes(whole, [cut]), messages).body).join("")).toBe(`Write to ${LABEL}or to john@`);
    }
  });

  it("masks a whole message's text blocks and tool input", () => {
    const answer = {
      type: "message",
      content: [
        { type: "text", text: `mail ${EMAIL}` },
        { type: "tool_use", id: "t", name: "send", input: { to: EMAIL } },
      ],
    };
    const { body } = run(frameChunks([JSON.stringify(answer)]), { ...messages, contentType: "application/json" });
    expect(JSON.parse(body).content).toEqual([
      { type: "text", text: `mail ${LABEL}` },
      { type: "tool_use", id: "t", name: "send", input: { to: LABEL } },
    ]);
  });
});

describe("OpenAI Responses streams", () => {
  const responses = { contentType: SSE, fields: [...DEFAULT_FIELDS.openai, ...API_FIELDS["openai.responses"]] };
  let sequence = 0;
  const event = (type: string, data: object) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`;
  const at = { item_id: "msg_1", output_index: 0, content_index: 0 };
  const whole = `Write to ${EMAIL} now`;
  const part = (text: string) => ({ type: "output_text", text, annotations: [] });
  const item = (text: string) => ({ id: "msg_1", type: "message", role: "assistant", content: [part(text)] });
  const frames = [
    event("response.created", { response: { id: "resp_1", output: [], usage: null } }),
    event("response.output_item.added", { output_index: 0, item: { ...item(""), content: [] } }),
    event("response.content_part.added", { ...at, part: part("") }),
    ...["Write to jo", "hn@exa", "mple.com no", "w"].map((delta) =>
      event("response.output_text.delta", { ...at, delta }),
    ),
    event("response.output_text.done", { ...at, text: whole }),
    event("response.content_part.done", { ...at, part: part(whole) }),
    event("response.output_item.done", { output_index: 0, item: item(whole) }),
    event("response.completed", { response: { id: "resp_1", output: [item(whole)], usage: { output_tokens: 4 } } }),
  ];

  it("masks the pieces across events and the whole text every closing event repeats, counting it once", () => {
    const { body, outputs, counts } = run(frameChunks(frames), responses);
    for (const output of outputs) expect(output).not.toContain("john");
    const data = sseData(body) as { type: string; delta?: string }[];
    expect(
      data
        .filter((entry) => entry.type === "response.output_text.delta")
        .map((entry) => entry.delta)
        .join(""),
    ).toBe(`Write to ${LABEL} now`);
    expect(body.split(`Write to ${LABEL} now`).length - 1).toBe(4);
    expect(counts).toEqual({ EMAIL: 1 });
  });

  it("masks the same whatever the cuts", () => {
    const text = frames.join("");
    for (const cut of [5, 100, 400, 700, text.length - 2]) {
      const { body } = run(cutBytes(text, [cut]), responses);
      expect(body).not.toContain("john");
      expect(body.split(`Write to ${LABEL} now`).length - 1).toBe(4);
    }
  });

  it("masks a whole response's output text and function call arguments", () => {
    const answer = {
      object: "response",
      output: [
        item(`mail ${EMAIL}`),
        { type: "function_call", call_id: "c", name: "send", arguments: `{"to":"${EMAIL}"}` },
      ],
    };
    const { body } = run(frameChunks([JSON.stringify(answer)]), { ...responses, contentType: "application/json" });
    expect(body).not.toContain("john");
    expect(JSON.parse(body).output[1].arguments).toBe(`{"to":"${LABEL}"}`);
  });
});
