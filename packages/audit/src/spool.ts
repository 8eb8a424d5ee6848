// The gateway's audit spool: records that cannot be handed to the queue
// right now wait in an append-only file on local disk instead of in memory,
// so a gateway killed with SIGKILL (or by the OOM killer) while Redis is
// away loses at most the records of its last group-commit window, not all
// it held. The sink (sink.ts) decides when records go here; this module
// keeps them in order, durable, bounded, and hands them back oldest first.
//
// Layout of the directory (created 0700; files 0600: records hold prompts):
//   <stamp>-<origin>.<holder>.spool   records, in frames (spool-file.ts)
//   <holder>.lock                     the live holder's pid, host and process
// `origin` is the gateway that wrote the file, `holder` the one that will
// replay it; the stamp (milliseconds and a sequence number, fixed width)
// orders files by creation, so sorting names is replay order.
//
// A gateway restarted after a crash has a new id. At start, and every third
// of the lease afterwards, it adopts the files whose holder is gone: it
// renames them to name itself as holder. rename() is atomic, so when two
// live gateways share the directory exactly one of them adopts a file and
// no file is replayed by two at once. A holder is gone when its lock file
// is missing (a clean shutdown removes it), or its process is no longer
// running on this host, or it has not refreshed the lock for a lease.
import { randomUUID } from "node:crypto";
import { readlinkSync } from "node:fs";
import {
  constants,
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { ConfigError, type Logger } from "@modelgate/core";
import type { AuditRecord } from "./record.js";
import { encodeFrame, type Frame, FrameReader, scanFrames } from "./spool-file.js";

export interface AuditSpoolOptions {
  /** The spool directory; created 0700 when missing, refused when group or others can write to it. */
  dir: string;
  /** This gateway's id: it names the gateway's files and its lock. Letters, digits and '-'. */
  ownerId: string;
  logger: Logger;
  /** Bytes on disk (the files, held records included) before the spool stops taking new ones (default 1 GiB). */
  maxBytes?: number | undefined;
  /** Appends are written and fsync'd together, at most this often (default 50 ms). */
  commitIntervalMs?: number | undefined;
  /** A holder that has not refreshed its lock for this long is gone (default 60 s). */
  leaseMs?: number | undefined;
}

export interface AuditSpoolStatus {
  dir: string;
  /** Records waiting in the spool: on disk and not yet handed over, or about to be written. */
  records: number;
  /** Bytes of the spool's files plus those about to be written. */
  bytes: number;
  maxBytes: number;
  files: number;
  /** True while writing to the disk fails; the records wait in memory meanwhile and are retried. */
  failing: boolean;
}

export const DEFAULT_SPOOL_MAX_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_COMMIT_INTERVAL_MS = 50;
const DEFAULT_LEASE_MS = 60_000;
const OWNER_ID = /^[A-Za-z0-9-]{1,64}$/;
const FILE_NAME = /^(\d{15}-\d{6})-([A-Za-z0-9-]{1,64})\.([A-Za-z0-9-]{1,64})\.spool$/;
const LOCK_NAME = /^([A-Za-z0-9-]{1,64})\.lock$/;
/** Repeated write failures are logged at most this often. */
const FAILURE_LOG_INTERVAL_MS = 30_000;
const RETRY_MS = { first: 100, max: 5_000 };
/**
 * Tells this process's locks from those of an earlier process that had the
 * same pid (a container restarted: the gateway is pid 1 again).
 */
const PROCESS_NONCE = randomUUID();

/**
 * The PID namespace this process runs in (Linux), so a pid in a lock is
 * compared only with processes it can name: containers sharing the host's
 * network share its host name, but each has its own pids (every gateway is
 * pid 1), and one must not take a live sibling's pid for a dead one.
 */
const PID_NAMESPACE = (() => {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return undefined;
  }
})();

interface Lock {
  pid: number;
  /** PID_NAMESPACE of the holder; absent where it cannot be read. */
  pidNamespace?: string | undefined;
  host: string;
  process: string;
  holder: string;
  startedAt: string;
}

/** One spool file, as its reader and (for the one being appended to) its writer see it. */
interface Segment {
  name: string;
  path: string;
  handle: FileHandle;
  reader: FrameReader;
  /** Where readable frames end: what was fsync'd (own file) or the last whole frame (adopted file). */
  end: number;
  /** Bytes on disk. */
  size: number;
  /** Up to here the records were handed over. */
  read: number;
  /** Records between `read` and `end` (for status only; `read < end` is what decides). */
  records: number;
}

export class AuditSpool {
  readonly #dir: string;
  readonly #ownerId: string;
  readonly #logger: Logger;
  readonly #maxBytes: number;
  readonly #commitIntervalMs: number;
  readonly #leaseMs: number;

  /** In replay order (file name order). */
  #segments: Segment[] = [];
  /** The file appends go to; created when the first record after an empty spool is committed. */
  #active: Segment | undefined;
  #diskBytes = 0;
  #diskRecords = 0;
  #sequence = 0;
  #lastStamp = 0;

  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /**
   * Bytes of the commit running now: off the pending list, not yet on disk.
   * They count against the size bound like both, or a slow fsync would
   * open room that is not there.
   */
  #writingBytes = 0;
  /** Records appended and not yet durable: pending, and in the commit running now. */
  #unsynced = 0;
  #committing: Promise<void> | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  #lastCommitAt = 0;
  #failures = 0;
  #lastFailureLogAt = 0;

  /** The records of the last peek(), until ack(). */
  #batch: { segment: Segment; records: AuditRecord[]; next: number } | undefined;
  #listener: (() => void) | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #adopting: Promise<void> | undefined;
  #closed = false;

  private constructor(options: AuditSpoolOptions) {
    this.#dir = path.resolve(options.dir);
    this.#ownerId = options.ownerId;
    this.#logger = options.logger;
    this.#maxBytes = options.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
    this.#commitIntervalMs = options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  }

  /**
   * Prepares the directory, takes this gateway's lock and adopts the files
   * of gateways that are gone (a predecessor killed on this host). Throws
   * when the directory cannot be used safely: the gateway must not start.
   */
  static async open(options: AuditSpoolOptions): Promise<AuditSpool> {
    if (!OWNER_ID.test(options.ownerId))
      throw new Error("audit spool: the owner id must be 1-64 letters, digits or '-'");
    const spool = new AuditSpool(options);
    await spool.#prepareDirectory();
    await spool.#writeLock();
    try {
      await spool.#adopt();
    } catch (error) {
      await spool.close();
      throw error;
    }
    spool.#leaseTimer = setInterval(() => spool.#tend(), Math.max(10, Math.floor(spool.#leaseMs / 3)));
    spool.#leaseTimer.unref();
    const status = spool.status();
    spool.#logger.info(
      { dir: spool.#dir, maxBytes: spool.#maxBytes, records: status.records, files: status.files },
      "audit spool ready",
    );
    return spool;
  }

  /**
   * Appends one record. It is on disk within the commit interval (plus the
   * time the disk takes); until then it is in memory, and lost if the
   * process dies.
   */
  append(record: AuditRecord): void {
    if (this.#closed) throw new Error("audit spool is closed");
    const frame = encodeFrame(record);
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    this.#unsynced += 1;
    this.#scheduleCommit(0);
  }

  /** Called whenever records become readable (committed or adopted): the sink wakes its pump. */
  onRecords(listener: () => void): void {
    this.#listener = listener;
  }

  /** Nothing waits in the spool: no record on disk still to hand over, none about to be written. */
  get empty(): boolean {
    return this.#unsynced === 0 && this.#segments.every((segment) => segment.read >= segment.end);
  }

  /** Records on disk wait to be handed over (peek() has something to give). */
  get readable(): boolean {
    return this.#segments.some((segment) => segment.read < segment.end);
  }

  /** Whether the spool takes more records: below its size bound, and its disk writes succeed. */
  hasRoom(): boolean {
    return this.#heldBytes() < this.#maxBytes && !(this.#failures > 0 && this.#unsynced > 0);
  }

  /** On disk, being written, or waiting to be: what the size bound applies to. */
  #heldBytes(): number {
    return this.#diskBytes + this.#writingBytes + this.#pendingBytes;
  }

  status(): AuditSpoolStatus {
    return {
      dir: this.#dir,
      records: this.#diskRecords + this.#unsynced,
      bytes: this.#heldBytes(),
      maxBytes: this.#maxBytes,
      files: this.#segments.length,
      failing: this.#failures > 0,
    };
  }

  /**
   * The oldest records on disk not yet handed over, up to the limits (at
   * least one when there is one), in the order they were appended. The same
   * records come back until ack(). Empty when nothing is on disk yet.
   */
  async peek(maxRecords: number, maxBytes: number): Promise<readonly AuditRecord[]> {
    if (this.#batch) return this.#batch.records;
    for (const segment of [...this.#segments]) {
      if (segment.read >= segment.end) continue;
      const records: AuditRecord[] = [];
      let offset = segment.read;
      let bytes = 0;
      while (records.length < maxRecords) {
        let frame: Frame;
        try {
          frame = await segment.reader.frameAt(offset, segment.end, true);
        } catch (error) {
          // The file changed under us (cut short by hand, a disk error): keep what was read, give up the rest.
          this.#logger.error(
            { err: error, file: segment.name, offset, bytes: segment.end - offset },
            "audit spool: a file cannot be read further; the records after this offset are skipped",
          );
          segment.end = offset;
          break;
        }
        if (frame.kind === "end") break;
        const size = frame.next - offset;
        if (records.length > 0 && bytes + size > maxBytes) break;
        // Damaged frames were logged when the file was adopted; they are passed over here.
        if (frame.kind === "record" && frame.record) records.push(frame.record);
        bytes += size;
        offset = frame.next;
      }
      this.#batch = { segment, records, next: offset };
      if (records.length > 0) return records;
      // Only damaged frames: nothing to hand over, move past them.
      await this.ack();
    }
    return [];
  }

  /** The records of the last peek() are in the queue: they are not read again, and a file handed over in full is deleted. */
  async ack(): Promise<void> {
    const batch = this.#batch;
    if (!batch) return;
    this.#batch = undefined;
    const { segment } = batch;
    segment.read = batch.next;
    const handedOver = Math.min(segment.records, batch.records.length);
    segment.records -= handedOver;
    this.#diskRecords -= handedOver;
    await this.#dropIfDone(segment);
  }

  /** Writes what is pending now, without waiting out the commit interval. */
  async sync(): Promise<void> {
    while (this.#pending.length > 0 || this.#committing) {
      if (this.#committing) await this.#committing;
      else await this.#commit();
      if (this.#failures > 0) return;
    }
  }

  /**
   * Writes what is pending, closes the files (those with records not yet
   * handed over stay for the next gateway) and removes the lock, so a
   * successor adopts them at once. Records that cannot be written are
   * reported; nothing else is lost.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#leaseTimer);
    await this.#adopting;
    await this.sync();
    this.#closed = true;
    if (this.#unsynced > 0) {
      this.#logger.error(
        { records: this.#unsynced, dir: this.#dir },
        "audit records could not be written to the spool before shutdown and are lost",
      );
    }
    for (const segment of this.#segments) {
      await segment.handle.close().catch(() => undefined);
      if (segment.read >= segment.end) await unlink(segment.path).catch(() => undefined);
    }
    const kept = this.#segments.filter((segment) => segment.read < segment.end);
    if (kept.length > 0) {
      this.#logger.warn(
        { records: this.#diskRecords, files: kept.length, dir: this.#dir },
        "audit records wait in the spool for the next gateway to start with this directory",
      );
    }
    this.#segments = [];
    this.#active = undefined;
    await unlink(this.#lockPath(this.#ownerId)).catch(() => undefined);
  }

  // --- writing -------------------------------------------------------------

  #scheduleCommit(minDelayMs: number) {
    if (this.#commitTimer || this.#committing || this.#closed) return;
    // Group commit: one write and one fsync for every record that arrived
    // since the last, and at most one fsync per interval.
    const delay = Math.max(minDelayMs, this.#lastCommitAt + this.#commitIntervalMs - Date.now(), 0);
    this.#commitTimer = setTimeout(() => {
      this.#commitTimer = undefined;
      void this.#commit();
    }, delay);
  }

  #commit(): Promise<void> {
    if (this.#committing) return this.#committing;
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    if (this.#pending.length === 0) return Promise.resolve();
    this.#committing = this.#writePending().finally(() => {
      this.#committing = undefined;
      if (this.#pending.length > 0) {
        this.#scheduleCommit(this.#failures > 0 ? retryDelay(this.#failures) : 0);
      }
    });
    return this.#committing;
  }

  async #writePending(): Promise<void> {
    this.#lastCommitAt = Date.now();
    const frames = this.#pending;
    const bytes = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#writingBytes = bytes;
    let segment = this.#active;
    try {
      if (segment && !(await this.#stillOurs(segment))) segment = undefined;
      segment ??= await this.#createSegment();
      await writeAll(segment.handle, frames, segment.size);
      await segment.handle.datasync();
    } catch (error) {
      // Back in front, in order; whatever part reached the file is cut off
      // again so the next attempt does not leave a torn frame mid-file.
      this.#pending = frames.concat(this.#pending);
      this.#writingBytes = 0;
      this.#pendingBytes += bytes;
      if (segment) await segment.handle.truncate(segment.size).catch(() => undefined);
      this.#onWriteFailure(error);
      return;
    }
    this.#writingBytes = 0;
    segment.size += bytes;
    segment.end = segment.size;
    segment.records += frames.length;
    this.#diskBytes += bytes;
    this.#diskRecords += frames.length;
    this.#unsynced -= frames.length;
    if (this.#failures > 0) this.#logger.info({ failures: this.#failures }, "audit spool writes succeed again");
    this.#failures = 0;
    this.#listener?.();
  }

  #onWriteFailure(error: unknown) {
    this.#failures += 1;
    const now = Date.now();
    if (this.#failures === 1 || now - this.#lastFailureLogAt >= FAILURE_LOG_INTERVAL_MS) {
      this.#lastFailureLogAt = now;
      this.#logger.error(
        { err: error, dir: this.#dir, records: this.#unsynced, failures: this.#failures },
        "audit records cannot be written to the spool; they wait in memory and new requests are refused",
      );
    }
  }

  async #createSegment(): Promise<Segment> {
    // Stamps only grow within a process, whatever the clock does, so this
    // gateway's own files replay in the order they were written.
    this.#lastStamp = Math.max(Date.now(), this.#lastStamp);
    this.#sequence = (this.#sequence + 1) % 1_000_000;
    const stamp = `${String(this.#lastStamp).padStart(15, "0")}-${String(this.#sequence).padStart(6, "0")}`;
    const name = `${stamp}-${this.#ownerId}.${this.#ownerId}.spool`;
    const file = path.join(this.#dir, name);
    const handle = await open(
      file,
      constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      // The new name must survive a crash as well as the bytes in it.
      await syncDirectory(this.#dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
      throw error;
    }
    const segment: Segment = {
      name,
      path: file,
      handle,
      reader: new FrameReader(handle),
      end: 0,
      size: 0,
      read: 0,
      records: 0,
    };
    this.#insert(segment);
    this.#active = segment;
    return segment;
  }

  /**
   * False when another gateway adopted this file (it judged this one gone:
   * a process paused for longer than the lease). Its records are replayed
   * there; this gateway starts a new file rather than write into one that
   * another will delete.
   */
  async #stillOurs(segment: Segment): Promise<boolean> {
    try {
      await stat(segment.path);
      return true;
    } catch {
      this.#logger.warn({ file: segment.name }, "audit spool file was adopted by another gateway; starting a new one");
      if (this.#active === segment) this.#active = undefined;
      return false;
    }
  }

  async #dropIfDone(segment: Segment) {
    if (segment.read < segment.end) return;
    // The file being appended to stays while records are on their way to it.
    if (segment === this.#active && this.#unsynced > 0) return;
    if (segment === this.#active) this.#active = undefined;
    this.#segments = this.#segments.filter((item) => item !== segment);
    this.#diskBytes -= segment.size;
    this.#diskRecords -= segment.records;
    await segment.handle.close().catch(() => undefined);
    await unlink(segment.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT")
        this.#logger.warn({ err: error, file: segment.name }, "audit spool file not deleted");
    });
  }

  #insert(segment: Segment) {
    this.#segments.push(segment);
    this.#segments.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // --- the directory, the lock, adoption ---------------------------------------

  async #prepareDirectory() {
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new ConfigError(
        `MODELGATE_AUDIT_SPOOL_DIR: cannot create ${this.#dir} (${(error as NodeJS.ErrnoException).code ?? error})`,
      );
    }
    const info = await stat(this.#dir);
    if (!info.isDirectory()) throw new ConfigError(`MODELGATE_AUDIT_SPOOL_DIR: ${this.#dir} is not a directory`);
    // Whoever can write here can delete spooled records or plant forged
    // ones. An existing directory's mode is never changed (it may be /tmp).
    if ((info.mode & 0o022) !== 0) {
      throw new ConfigError(
        `MODELGATE_AUDIT_SPOOL_DIR: ${this.#dir} is writable by group or others (mode ${(info.mode & 0o777).toString(8)}); ` +
          "use a directory of the gateway's user with mode 0700, or a path the gateway creates",
      );
    }
    if ((info.mode & 0o077) !== 0) {
      this.#logger.warn(
        { dir: this.#dir, mode: (info.mode & 0o777).toString(8) },
        "audit spool directory is readable by others; its files are 0600, but 0700 is safer",
      );
    }
  }

  #lockPath(holder: string) {
    return path.join(this.#dir, `${holder}.lock`);
  }

  async #writeLock() {
    const lock: Lock = {
      pid: process.pid,
      pidNamespace: PID_NAMESPACE,
      host: hostname(),
      process: PROCESS_NONCE,
      holder: this.#ownerId,
      startedAt: new Date().toISOString(),
    };
    await writeFile(this.#lockPath(this.#ownerId), `${JSON.stringify(lock)}\n`, { flag: "wx", mode: 0o600 });
  }

  /** Refreshes the lock (its mtime is the lease) and adopts files whose holder went away meanwhile. */
  #tend() {
    if (this.#closed || this.#adopting) return;
    this.#adopting = (async () => {
      const now = new Date();
      await utimes(this.#lockPath(this.#ownerId), now, now).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
        // Someone removed it; another gateway may have adopted our files (see #stillOurs).
        this.#logger.warn({ dir: this.#dir }, "audit spool lock was removed; writing it again");
        await this.#writeLock();
      });
      await this.#adopt();
    })()
      .catch((error: unknown) => this.#logger.error({ err: error, dir: this.#dir }, "audit spool upkeep failed"))
      .finally(() => {
        this.#adopting = undefined;
      });
  }

  async #adopt() {
    const names = await readdir(this.#dir);
    const locks = new Set(names.flatMap((name) => LOCK_NAME.exec(name)?.[1] ?? []));
    const gone = new Map<string, boolean>();
    let adopted = 0;
    for (const name of names.sort()) {
      const match = FILE_NAME.exec(name);
      if (!match) continue;
      const [, stamp, origin, holder] = match as unknown as [string, string, string, string];
      if (holder === this.#ownerId) continue;
      if (!gone.has(holder)) gone.set(holder, await this.#holderGone(holder, locks.has(holder)));
      if (!gone.get(holder)) continue;
      const segment = await this.#adoptFile(name, `${stamp}-${origin}.${this.#ownerId}.spool`);
      if (segment) adopted += segment.records;
    }
    // Locks of gone holders whose files are all adopted (or that had none).
    for (const [holder, isGone] of gone) if (isGone) await unlink(this.#lockPath(holder)).catch(() => undefined);
    for (const holder of locks) {
      if (holder === this.#ownerId || gone.has(holder)) continue;
      if (await this.#holderGone(holder, true)) await unlink(this.#lockPath(holder)).catch(() => undefined);
    }
    if (adopted > 0) this.#listener?.();
  }

  async #adoptFile(name: string, adoptedName: string): Promise<Segment | undefined> {
    const from = path.join(this.#dir, name);
    const to = path.join(this.#dir, adoptedName);
    const info = await lstat(from).catch(() => undefined);
    if (!info) return undefined;
    // Only plain files of the gateway's own user: never follow a planted link.
    if (!info.isFile() || info.uid !== process.getuid?.()) {
      this.#logger.error({ file: name }, "audit spool: not adopting a file that is not a plain file of this user");
      return undefined;
    }
    try {
      await rename(from, to);
    } catch (error) {
      // Another gateway adopted it first.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    const handle = await open(to, constants.O_RDONLY | constants.O_NOFOLLOW);
    const size = (await handle.stat()).size;
    const scan = await scanFrames(handle, size);
    for (const damaged of scan.damaged) {
      this.#logger.error({ file: name, ...damaged }, "audit spool: skipping a damaged record");
    }
    if (scan.tail) {
      // A gateway killed while appending leaves its last frame cut short.
      this.#logger.warn(
        { file: name, ...scan.tail },
        "audit spool: ignoring an incomplete record at the end of a file",
      );
    }
    const segment: Segment = {
      name: adoptedName,
      path: to,
      handle,
      reader: new FrameReader(handle),
      end: scan.end,
      size,
      read: 0,
      records: scan.records,
    };
    this.#diskBytes += size;
    this.#diskRecords += scan.records;
    this.#insert(segment);
    this.#logger.info(
      { file: name, records: scan.records, bytes: size },
      "audit spool: adopted the records of a gateway that is gone",
    );
    if (scan.records === 0 && scan.damaged.length === 0) await this.#dropIfDone(segment);
    return segment;
  }

  /** Whether a holder's files may be adopted: its lock is gone, its process is, or its lease ran out. */
  async #holderGone(holder: string, hasLock: boolean): Promise<boolean> {
    if (!hasLock) return true;
    const file = this.#lockPath(holder);
    let lock: Partial<Lock>;
    let modified: number;
    try {
      const [text, info] = await Promise.all([readFile(file, "utf8"), stat(file)]);
      lock = JSON.parse(text) as Partial<Lock>;
      modified = info.mtimeMs;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
      // Unreadable or half-written (its holder was killed while writing it): go by the lease.
      const info = await stat(file).catch(() => undefined);
      return !info || Date.now() - info.mtimeMs > this.#leaseMs;
    }
    if (lock.process === PROCESS_NONCE) return false;
    if (lock.host === hostname() && lock.pidNamespace === PID_NAMESPACE) {
      // A process this one can see: alive or not is known at once (our own
      // pid here means a predecessor that had it, in a restarted process).
      if (lock.pid === process.pid || !processAlive(lock.pid)) return true;
    }
    // Another host, another PID namespace (a container sharing the host's
    // name), or a pid that is alive (possibly reused): the lease decides.
    return Date.now() - modified > this.#leaseMs;
  }
}

function processAlive(pid: unknown): boolean {
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function writeAll(handle: FileHandle, frames: Buffer[], position: number) {
  let offset = position;
  let pending = frames;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, offset);
    offset += bytesWritten;
    // A short write (rare, a signal or a nearly full disk): go on from where it stopped.
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const frame of pending) {
      if (skip >= frame.length) {
        skip -= frame.length;
        continue;
      }
      rest.push(skip > 0 ? frame.subarray(skip) : frame);
      skip = 0;
    }
    if (bytesWritten === 0 && rest.length > 0) throw new Error("the disk accepted no bytes");
    pending = rest;
  }
}

async function syncDirectory(dir: string) {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function retryDelay(failures: number): number {
  return Math.min(RETRY_MS.max, RETRY_MS.first * 2 ** Math.min(failures - 1, 20));
}
