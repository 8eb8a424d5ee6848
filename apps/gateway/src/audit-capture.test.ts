import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isTextContentType, ResponseCapture, recordBody } from "./audit-capture.js";

/** Answers one request with `respond`, captured with `maxBytes`, and returns what the capture kept. */
async function capture(maxBytes: number, respond: (res: ServerResponse) => Promise<void> | void) {
  let captured: ReturnType<ResponseCapture["result"]> | undefined;
  const server = createServer(async (_req, res) => {
    const recorder = new ResponseCapture(res, performance.now(), maxBytes);
    await respond(res);
    captured = recorder.result();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const received = Buffer.from(await (await fetch(`http://127.0.0.1:${port}/`)).arrayBuffer());
  server.close();
  if (!captured) throw new Error("nothing captured");
  return { captured, received };
}

describe("recordBody", () => {
  it("keeps text as text and cuts at the cap without splitting a character", () => {
    expect(recordBody(Buffer.from("héllo"), 1024)).toEqual({ text: "héllo", truncated: false, bytes: 6 });
    // "é" is two bytes; a cap inside it keeps the character out.
    expect(recordBody(Buffer.from("hé"), 2)).toEqual({ text: "h", truncated: true, bytes: 3 });
  });

  it("keeps bytes that are not UTF-8 as base64", () => {
    const bytes = Buffer.from([0xff, 0x00, 0x81]);
    expect(recordBody(bytes, 1024)).toEqual({ text: "/wCB", encoding: "base64", truncated: false, bytes: 3 });
  });
});

describe("ResponseCapture", () => {
  it("records a stream's chunks as events and a character split between chunks whole", async () => {
    const euro = Buffer.from("€"); // three bytes
    const { captured, received } = await capture(1024, async (res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      res.write(Buffer.concat([Buffer.from("data: a"), euro.subarray(0, 1)]));
      await new Promise((resolve) => setTimeout(resolve, 20));
      res.write(Buffer.concat([euro.subarray(1), Buffer.from("\n\n")]));
      res.end("data: [DONE]\n\n");
    });
    expect(received.toString()).toBe("data: a€\n\ndata: [DONE]\n\n");
    expect(captured.response).toEqual({ text: "data: a€\n\ndata: [DONE]\n\n", truncated: false, bytes: 26 });
    expect(captured.events.map((event) => event.data)).toEqual(["data: a", "€\n\n", "data: [DONE]\n\n"]);
    expect(captured.events[1]?.offsetMs).toBeGreaterThanOrEqual(captured.events[0]?.offsetMs ?? 0);
    expect(captured.contentType).toBe("text/event-stream");
    expect(captured.firstByteAt).toBeDefined();
  });

  it("records a body written at once without events", async () => {
    const { captured } = await capture(1024, (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    expect(captured.response?.text).toBe('{"ok":true}');
    expect(captured.events).toEqual([]);
  });

  it("cuts at the cap, flags it, and counts every byte sent", async () => {
    const { captured, received } = await capture(10, (res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("0123456");
      res.write("789abc");
      res.end("def");
    });
    expect(received.toString()).toBe("0123456789abcdef");
    expect(captured.response).toEqual({ text: "0123456789", truncated: true, bytes: 16 });
    expect(captured.events.map((event) => event.data)).toEqual(["0123456", "789"]);
  });

  it("keeps a binary or content-encoded answer as base64", async () => {
    const { captured } = await capture(1024, (res) => {
      res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
      res.end(Buffer.from([0x1f, 0x8b, 0x08]));
    });
    expect(captured.response).toEqual({ text: "H4sI", encoding: "base64", truncated: false, bytes: 3 });
    expect(captured.events).toEqual([]);
  });

  it("knows text content types", () => {
    for (const type of ["text/event-stream", "application/json; charset=utf-8", "application/x-ndjson", undefined]) {
      expect(isTextContentType(type)).toBe(true);
    }
    for (const type of ["image/png", "application/octet-stream", "audio/wav"]) {
      expect(isTextContentType(type)).toBe(false);
    }
  });
});
