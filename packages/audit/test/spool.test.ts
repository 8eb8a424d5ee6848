// The audit spool on a real filesystem: records survive their writer, a
// torn or damaged file never stops a replay, two gateways sharing one
// directory never replay the same file, and the sink in front of it fails
// closed when the spool is full. What a gateway killed with SIGKILL leaves
// behind is exercised with the real process in apps/gateway's fault tests;
// here a dead gateway's leftovers are its files and a lock naming a process
// that has exited.

import { spawnSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@modelgate/core";
import fc from "fast-check";
import type { AuditRecord } from "../src/record.js";
import { AuditSink, type AuditTransport } from "../src/sink.js";
import { AuditSpool } from "../src/spool.js";
import { encodeFrame, FRAME_HEADER_BYTES } from "../src/spool-file.js";
import { record } from "./records.js";

function captureLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { logger: createLogger({ name: "spool-test", level: "debug", destination }), lines };
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "modelgate-spool-test-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirs = 0;
function freshDir() {
  dirs += 1;
  return path.join(root, `dir-${dirs}`, "spool");
}

const open = (
  dir: string,
  ownerId: string,
  extra: { maxBytes?: number; leaseMs?: number; commitIntervalMs?: number } = {},
) => AuditSpool.open({ dir, ownerId, logger: captureLogger().logger, ...extra });

/** Everything a spool gives back, handing each batch over. */
async function drain(spool: AuditSpool, batch = 7): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const records = await spool.peek(batch, 1024 * 1024);
    if (records.length === 0) return ids;
    ids.push(...records.map((item) => item.sessionId));
    await spool.ack();
  }
}

/** The pid of a process that has exited (one for the file: pids are reused only after the whole range). */
const deadPid = (() => {
  let pid: number | undefined;
  return () => {
    pid ??= spawnSync(process.execPath, ["-e", ""]).pid;
    if (!pid) throw new Error("no child process");
    return pid;
  };
})();

/**
 * Writes records with a real spool elsewhere and leaves its file in `dir`
 * the way a gateway killed on this host does: the file, and a lock naming a
 * process that no longer runs. Returns the file's path.
 */
async function leaveBehind(dir: string, owner: string, records: AuditRecord[]): Promise<string> {
  const scratch = freshDir();
  const writer = await open(scratch, owner);
  for (const item of records) writer.append(item);
  await writer.sync();
  const [name] = (await readdir(scratch)).filter((file) => file.endsWith(".spool"));
  if (!name) throw new Error("the writer left no file");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await copyFile(path.join(scratch, name), path.join(dir, name));
  const lock = {
    pid: deadPid(),
    pidNamespace: PID_NAMESPACE,
    host: hostname(),
    process: "a-process-that-exited",
    holder: owner,
  };
  await writeFile(path.join(dir, `${owner}.lock`), JSON.stringify(lock), { mode: 0o600 });
  await writer.close();
  return path.join(dir, name);
}

/** This process's PID namespace, as the spool writes it in its locks. */
const PID_NAMESPACE = (() => {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return undefined;
  }
})();

describe("AuditSpool", () => {
  it("keeps records in order, in 0600 files of a 0700 directory, for the next gateway when closed unsent", async () => {
    const dir = freshDir();
    const first = await open(dir, "gw-a");
    const written = [record("one"), record("two"), record("three")];
    for (const item of written) first.append(item);
    await first.sync();
    expect(first.status()).toMatchObject({ records: 3, files: 1, failing: false });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const name of await readdir(dir)) expect((await stat(path.join(dir, name))).mode & 0o777).toBe(0o600);
    await first.close();
    // A clean shutdown leaves the records and removes the lock: the next gateway adopts at once.
    expect((await readdir(dir)).filter((name) => name.endsWith(".lock"))).toEqual([]);

    const second = await open(dir, "gw-b");
    expect(second.status().records).toBe(3);
    expect(await drain(second)).toEqual(written.map((item) => item.sessionId));
    expect(second.empty).toBe(true);
    // Handed over in full: the file is gone.
    expect((await readdir(dir)).filter((name) => name.endsWith(".spool"))).toEqual([]);
    await second.close();
  });

  it("replays the whole records of a file cut anywhere or damaged inside a record, and never throws", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ maxLength: 300 }), { minLength: 1, maxLength: 12 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.option(fc.nat(), { nil: undefined }),
        async (texts, cutAt, damageIndex) => {
          const records = texts.map((text) => record(text));
          const dir = freshDir();
          const file = await leaveBehind(dir, "gw-dead", records);
          const sizes = records.map((item) => encodeFrame(item).length);
          const total = sizes.reduce((sum, size) => sum + size, 0);
          const cut = Math.floor(cutAt * total);
          const content = await readFile(file);
          // Damage one byte inside one record's payload: that record alone is lost.
          let damaged: number | undefined;
          if (damageIndex !== undefined) {
            damaged = damageIndex % records.length;
            const start = sizes.slice(0, damaged).reduce((sum, size) => sum + size, 0);
            const at = start + FRAME_HEADER_BYTES + Math.floor((sizes[damaged] as number) / 2 - FRAME_HEADER_BYTES / 2);
            content[at] = (content[at] as number) ^ 0xff;
          }
          await writeFile(file, content.subarray(0, cut));

          const { logger, lines } = captureLogger();
          const spool = await AuditSpool.open({ dir, ownerId: "gw-new", logger });
          const replayed = await drain(spool);
          let end = 0;
          const expected = records.filter((_item, index) => {
            end += sizes[index] as number;
            return end <= cut && index !== damaged;
          });
          expect(replayed).toEqual(expected.map((item) => item.sessionId));
          const whole = records.filter((_, index) => sizes.slice(0, index + 1).reduce((a, b) => a + b, 0) <= cut);
          const wholeEnd = sizes.slice(0, whole.length).reduce((sum, size) => sum + size, 0);
          expect(lines.some((line) => line.includes("incomplete record"))).toBe(cut > wholeEnd);
          if (damaged !== undefined && whole.length > damaged) {
            expect(lines.some((line) => line.includes("damaged record"))).toBe(true);
          }
          expect(spool.empty).toBe(true);
          await spool.close();
          expect((await readdir(dir)).filter((name) => name.endsWith(".spool"))).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("stops at a damaged frame header without throwing, keeping the records before it", async () => {
    const dir = freshDir();
    const records = [record("a"), record("b"), record("c")];
    const file = await leaveBehind(dir, "gw-dead", records);
    const content = await readFile(file);
    const second = encodeFrame(records[0] as AuditRecord).length;
    content.write("XXXX", second); // the second frame's marker
    await writeFile(file, content);
    const { logger, lines } = captureLogger();
    const spool = await AuditSpool.open({ dir, ownerId: "gw-new", logger });
    expect(await drain(spool)).toEqual([records[0]?.sessionId]);
    expect(lines.some((line) => line.includes("no frame marker"))).toBe(true);
    await spool.close();
  });

  it("gives each left-behind file to exactly one of two gateways starting at once on one directory", async () => {
    const dir = freshDir();
    const left: string[] = [];
    for (let index = 0; index < 8; index++) {
      const records = [record(), record(), record()];
      left.push(...records.map((item) => item.sessionId));
      await leaveBehind(dir, `gw-dead-${index}`, records);
    }
    const [a, b] = await Promise.all([open(dir, "gw-a"), open(dir, "gw-b")]);
    if (!a || !b) throw new Error("not opened");
    const fromA = await drain(a);
    const fromB = await drain(b);
    expect([...fromA, ...fromB].sort()).toEqual([...left].sort());
    // The dead gateways' locks went with their files.
    expect((await readdir(dir)).filter((name) => name.endsWith(".lock")).sort()).toEqual(["gw-a.lock", "gw-b.lock"]);
    await Promise.all([a.close(), b.close()]);
  });

  it("leaves a live gateway's file alone, and adopts it once that gateway is gone", async () => {
    const dir = freshDir();
    const a = await open(dir, "gw-a");
    const held = [record(), record()];
    for (const item of held) a.append(item);
    await a.sync();
    // A lock of this host but another PID namespace (a container sharing the
    // host's name, its gateway pid 1 too) names a pid this process cannot
    // see: judged by its lease, never by a pid of ours that happens to match.
    await writeFile(
      path.join(dir, "gw-sibling.lock"),
      JSON.stringify({
        pid: deadPid(),
        pidNamespace: "pid:[another-container]",
        host: hostname(),
        process: "x",
        holder: "gw-sibling",
      }),
    );
    await copyFile(
      await leaveBehind(freshDir(), "gw-sibling", [record()]),
      path.join(dir, `000000000000001-000001-gw-sibling.gw-sibling.spool`),
    );
    const c2 = await open(dir, "gw-c2");
    expect(c2.status().records).toBe(0);
    await c2.close();
    await unlink(path.join(dir, "gw-sibling.lock"));
    await unlink(path.join(dir, `000000000000001-000001-gw-sibling.gw-sibling.spool`));
    // B starts while A is alive: A's file is A's. (Only now: B's short lease
    // would let its upkeep adopt the sibling's file above while the test looks.)
    const b = await open(dir, "gw-b", { leaseMs: 150 });
    expect(b.status().records).toBe(0);
    // A lock of another host is judged by its lease alone: fresh, it is live.
    // Fresh for an hour, not for B's 150 ms lease only: under load the steps
    // below can take longer than that, and B's upkeep would adopt it early.
    const remoteLock = path.join(dir, "gw-remote.lock");
    await writeFile(remoteLock, JSON.stringify({ pid: 1, host: "another-host", process: "x", holder: "gw-remote" }));
    const fresh = new Date(Date.now() + 3_600_000);
    await utimes(remoteLock, fresh, fresh);
    await copyFile(
      await leaveBehind(freshDir(), "gw-remote", [record()]),
      path.join(dir, `000000000000001-000001-gw-remote.gw-remote.spool`),
    );
    const d = await open(dir, "gw-d");
    expect(d.status().records).toBe(0);
    await d.close();
    // Its lease ran out: adopted.
    const old = new Date(Date.now() - 3_600_000);
    await utimes(remoteLock, old, old);

    // A stops without handing its records over: B's upkeep adopts them (and the remote one).
    await a.close();
    const deadline = Date.now() + 10_000;
    while (b.status().records < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const ids = await drain(b);
    expect(ids.slice(1)).toEqual(held.map((item) => item.sessionId));
    expect(ids).toHaveLength(3);
    await b.close();
  });

  it("refuses a directory that group or others can write to, and never changes its mode", async () => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o777);
    await expect(open(dir, "gw-a")).rejects.toThrow(/writable by group or others/);
    expect((await stat(dir)).mode & 0o777).toBe(0o777);
  });

  it("fails closed when its disk writes fail, keeps the records in memory, and writes them once it can", async () => {
    const dir = freshDir();
    const { logger, lines } = captureLogger();
    const spool = await AuditSpool.open({ dir, ownerId: "gw-a", logger, commitIntervalMs: 5 });
    // The directory vanishes (a volume unmounted, a disk gone): no file can be created.
    await rm(dir, { recursive: true });
    const kept = record("kept");
    spool.append(kept);
    await spool.sync();
    expect(spool.status()).toMatchObject({ failing: true, records: 1 });
    expect(spool.hasRoom()).toBe(false);
    expect(lines.some((line) => line.includes("cannot be written to the spool"))).toBe(true);
    await mkdir(dir, { mode: 0o700 });
    const deadline = Date.now() + 10_000;
    while (spool.status().failing && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(spool.hasRoom()).toBe(true);
    expect(await drain(spool)).toEqual([kept.sessionId]);
    await spool.close();
  });

  it("counts the bytes of a commit still being written against its size bound (a slow fsync opens no room)", async () => {
    const dir = freshDir();
    const full = record("fills-the-spool");
    const frameBytes = encodeFrame(full).length;
    const spool = await open(dir, "gw-a", { maxBytes: frameBytes });
    spool.append(full);
    expect(spool.hasRoom()).toBe(false);
    // The commit takes the frame off the pending list before its first await: from here until
    // the fsync returns, the bytes are neither pending nor on disk, and must still count.
    const committing = spool.sync();
    expect(spool.status().bytes).toBe(frameBytes);
    expect(spool.hasRoom()).toBe(false);
    await committing;
    expect(spool.status().bytes).toBe(frameBytes);
    expect(spool.hasRoom()).toBe(false);
    expect(await drain(spool)).toEqual([full.sessionId]);
    expect(spool.hasRoom()).toBe(true);
    await spool.close();
  });
});

/** A transport that stores what it is sent (in order, once per id), or fails while `down` is set. */
function switchableTransport() {
  const sent: string[] = [];
  let down = false;
  const transport: AuditTransport = {
    async send(records) {
      if (down) throw new Error("transport down");
      for (const item of records) if (!sent.includes(item.sessionId)) sent.push(item.sessionId);
    },
    async close() {},
  };
  return { transport, sent, setDown: (value: boolean) => (down = value) };
}

async function until(condition: () => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("AuditSink with a spool", () => {
  it("moves records to disk while a hand-over hangs (a stalled Redis fails only at its timeout), and sends each", async () => {
    const dir = freshDir();
    const sent: string[] = [];
    let hanging = true;
    const transport: AuditTransport = {
      async send(records) {
        // A stalled queue: the command neither succeeds nor fails for seconds.
        while (hanging) await new Promise((resolve) => setTimeout(resolve, 20));
        for (const item of records) if (!sent.includes(item.sessionId)) sent.push(item.sessionId);
      },
      async close() {},
    };
    const spool = await open(dir, "gw-a", { commitIntervalMs: 10 });
    const sink = new AuditSink({ transport, logger: captureLogger().logger, retry: { baseMs: 5, maxMs: 20 }, spool });
    const submitted: string[] = [];
    for (let index = 0; index < 40; index++) {
      const ticket = sink.admit();
      if (!ticket) throw new Error("refused");
      const item = record();
      submitted.push(item.sessionId);
      ticket.submit(item);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // About a second of records while the first hand-over hangs: all of
    // them but those of the last moments are on disk, none only in memory.
    await until(() => (spool.status().records ?? 0) >= submitted.length, "the records to reach the spool");
    expect(sink.status().buffered).toBe(0);
    hanging = false;
    await until(() => sent.length === submitted.length, "every record to be sent");
    expect([...sent].sort()).toEqual([...submitted].sort());
    await sink.close(1_000);
  });

  it("spools what it cannot hand over, in order, refuses requests once the spool is full, and recovers", async () => {
    const dir = freshDir();
    const { transport, sent, setDown } = switchableTransport();
    const spool = await open(dir, "gw-a", { maxBytes: 64 * 1024 });
    const sink = new AuditSink({ transport, logger: captureLogger().logger, retry: { baseMs: 5, maxMs: 20 }, spool });
    const submitted: string[] = [];
    const submit = (text = "") => {
      const ticket = sink.admit();
      if (!ticket) return false;
      const item = record(text);
      submitted.push(item.sessionId);
      ticket.submit(item);
      return true;
    };
    submit();
    await until(() => sent.length === 1, "the first record sent");
    setDown(true);
    // About 1 KiB each: the 64 KiB spool fills after some sixty of them.
    let refused = false;
    for (let index = 0; index < 1_000 && !refused; index++) {
      refused = !submit("x".repeat(1000));
      // Let commits happen, as they would between requests.
      if (index % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(refused).toBe(true);
    expect(sink.status()).toMatchObject({ accepting: false, buffered: 0, transportHealthy: false });
    expect(sink.status().spool?.bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(submitted.length).toBeGreaterThan(30);

    setDown(false);
    await until(() => sent.length === submitted.length, "the spooled records to be sent");
    expect(sent).toEqual(submitted);
    // Memory again once the spool is empty and the transport is known to be
    // back (the sink learns it when a hand-over's answer arrives, which can
    // be after the transport has the records and the spool's files are gone).
    await until(
      () => sink.status().accepting && sink.status().transportHealthy && sink.status().spool?.files === 0,
      "the spool to empty and the transport to be healthy again",
    );
    submit();
    expect(sink.status().spool?.records).toBe(0);
    await until(() => sent.length === submitted.length, "the next record sent");
    await sink.close(1_000);
  });

  it("writes what it could not hand over at shutdown to the spool, and the next gateway sends it", async () => {
    const dir = freshDir();
    const down = switchableTransport();
    down.setDown(true);
    const first = new AuditSink({
      transport: down.transport,
      logger: captureLogger().logger,
      retry: { baseMs: 60_000, maxMs: 60_000 },
      spool: await open(dir, "gw-a"),
    });
    const held = [record(), record(), record()];
    for (const item of held) first.admit()?.submit(item);
    await first.close(50);

    const up = switchableTransport();
    const second = new AuditSink({
      transport: up.transport,
      logger: captureLogger().logger,
      spool: await open(dir, "gw-b"),
    });
    await until(() => up.sent.length === 3, "the records of the previous gateway");
    expect(up.sent).toEqual(held.map((item) => item.sessionId));
    await second.close(1_000);
  });
});
