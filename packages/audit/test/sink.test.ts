// The gateway's audit buffer: admission tied to a reserved place, retries
// while the transport fails, fail-closed when full, flush at shutdown.
// The transport here is a switchable in-memory one: what is under test is
// the buffer's bookkeeping; the BullMQ transport has its own tests against
// real Redis (transport.test.ts) and the gateway's fault tests use real
// processes.
import { Writable } from "node:stream";
import { createLogger } from "@modelgate/core";
import { AuditSink, type AuditTransport } from "../src/sink.js";
import { record } from "./records.js";

function quietLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { logger: createLogger({ name: "sink-test", level: "debug", destination }), lines };
}

/** A transport that stores what it is sent, or fails while `down` is set. */
function switchableTransport() {
  const sent: string[] = [];
  let down = false;
  let calls = 0;
  const transport: AuditTransport = {
    async send(records) {
      calls += 1;
      if (down) throw new Error("transport down");
      for (const record of records) if (!sent.includes(record.sessionId)) sent.push(record.sessionId);
    },
    async close() {},
  };
  return {
    transport,
    sent,
    setDown: (value: boolean) => {
      down = value;
    },
    calls: () => calls,
  };
}

async function until(condition: () => boolean, what: string) {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("AuditSink", () => {
  it("hands submitted records to the transport", async () => {
    const { transport, sent } = switchableTransport();
    const sink = new AuditSink({ transport, logger: quietLogger().logger });
    const records = [record(), record(), record()];
    for (const item of records) sink.admit()?.submit(item);
    await until(() => sent.length === 3, "three records sent");
    expect(sent).toEqual(records.map((item) => item.sessionId));
    expect(sink.status()).toMatchObject({ buffered: 0, reserved: 0, transportHealthy: true });
    await sink.close(1000);
  });

  it("holds records for the linger so that they leave as one batch, and sends at once when flushed", async () => {
    const { transport, sent, calls } = switchableTransport();
    // A linger far longer than the test: only the flush can send.
    const sink = new AuditSink({ transport, logger: quietLogger().logger, lingerMs: 60_000 });
    for (let index = 0; index < 4; index++) {
      sink.admit()?.submit(record());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(sent).toEqual([]);
    expect(await sink.flush(5_000)).toBe(true);
    expect(sent).toHaveLength(4);
    expect(calls()).toBe(1);
    await sink.close(1000);
  });

  it("keeps records while the transport fails, refuses new requests once full, and recovers", async () => {
    const { transport, sent, setDown } = switchableTransport();
    const { logger, lines } = quietLogger();
    const sink = new AuditSink({ transport, logger, maxRecords: 3, retry: { baseMs: 5, maxMs: 20 } });
    setDown(true);
    const first = sink.admit();
    const second = sink.admit();
    // Two requests in flight hold two places; the buffer still has one.
    expect(sink.status()).toMatchObject({ reserved: 2, accepting: true });
    first?.submit(record());
    second?.submit(record());
    await until(() => !sink.status().transportHealthy, "the failure to be noticed");
    const third = sink.admit();
    expect(third).toBeDefined();
    // Full: the third request's place is reserved, so a fourth is refused.
    expect(sink.admit()).toBeUndefined();
    expect(sink.status().accepting).toBe(false);
    third?.submit(record());
    expect(sink.admit()).toBeUndefined();
    expect(lines.some((line) => line.includes("cannot be handed over"))).toBe(true);

    setDown(false);
    await until(() => sent.length === 3, "the buffered records to be sent");
    expect(sink.status()).toMatchObject({ buffered: 0, transportHealthy: true, accepting: true });
    expect(sink.admit()).toBeDefined();
    await sink.close(1000);
  });

  it("never loses the record of an admitted request, even when the buffer filled meanwhile", async () => {
    const { transport, sent, setDown } = switchableTransport();
    const sink = new AuditSink({ transport, logger: quietLogger().logger, maxRecords: 1, retry: { baseMs: 5 } });
    setDown(true);
    const ticket = sink.admit();
    expect(sink.admit()).toBeUndefined();
    const kept = record();
    ticket?.submit(kept);
    ticket?.submit(record()); // a second submit of one ticket is ignored
    expect(sink.status().buffered).toBe(1);
    setDown(false);
    await until(() => sent.length === 1, "the record to be sent");
    expect(sent).toEqual([kept.sessionId]);
    await sink.close(1000);
  });

  it("fail-open serves every request and drops, loudly, what finds no place", async () => {
    const { transport, setDown } = switchableTransport();
    const { logger, lines } = quietLogger();
    let dropped = 0;
    const sink = new AuditSink({
      transport,
      logger,
      maxRecords: 1,
      failOpen: true,
      retry: { baseMs: 1000 },
      onDropped: () => {
        dropped += 1;
      },
    });
    expect(lines.some((line) => line.includes("MODELGATE_AUDIT_FAIL_OPEN is on"))).toBe(true);
    setDown(true);
    sink.admit()?.submit(record());
    const extra = sink.admit();
    expect(extra).toBeDefined();
    extra?.submit(record());
    expect(dropped).toBe(1);
    expect(sink.status()).toMatchObject({ accepting: true, dropped: 1, buffered: 1 });
    expect(lines.some((line) => line.includes("audit record dropped"))).toBe(true);
    await sink.close(0);
  });

  it("says so when a record arrives after it closed, instead of keeping it silently", async () => {
    const { transport, sent } = switchableTransport();
    const { logger, lines } = quietLogger();
    const sink = new AuditSink({ transport, logger });
    const late = sink.admit();
    await sink.close(100);
    late?.submit(record());
    expect(sent).toEqual([]);
    expect(lines.some((line) => line.includes("arrived after shutdown and is lost"))).toBe(true);
  });

  it("splits what it holds into batches by count and by size", async () => {
    const batches: number[] = [];
    const transport: AuditTransport = {
      async send(records) {
        batches.push(records.length);
      },
      async close() {},
    };
    // Each record is estimated at 2 KiB and more; 5 KiB holds two of them.
    const sink = new AuditSink({ transport, logger: quietLogger().logger, batchSize: 3, batchBytes: 5 * 1024 });
    const tickets = Array.from({ length: 5 }, () => sink.admit());
    for (const ticket of tickets) ticket?.submit(record());
    await sink.flush(1000);
    expect(batches.reduce((sum, count) => sum + count, 0)).toBe(5);
    expect(Math.max(...batches)).toBeLessThanOrEqual(2);
    await sink.close(1000);
  });

  it("flushes at close without waiting out the backoff, and reports what it could not send", async () => {
    const { transport, sent, setDown, calls } = switchableTransport();
    const { logger, lines } = quietLogger();
    // A backoff longer than the test: only flush's wake-ups can make it send.
    const sink = new AuditSink({ transport, logger, retry: { baseMs: 60_000, maxMs: 60_000 } });
    setDown(true);
    sink.admit()?.submit(record());
    await until(() => calls() >= 1, "the first failed send");
    setDown(false);
    expect(await sink.flush(5_000)).toBe(true);
    expect(sent).toHaveLength(1);

    setDown(true);
    sink.admit()?.submit(record());
    await sink.close(100);
    expect(lines.some((line) => line.includes("could not be handed over before shutdown"))).toBe(true);
  });
});
