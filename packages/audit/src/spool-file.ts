// The on-disk format of the audit spool (spool.ts): a file is a sequence of
// frames, each a 12-byte header and one record as UTF-8 JSON.
//
//   "MGS1" (4 bytes) | payload length (u32 BE) | CRC-32 of the payload (u32 BE) | payload
//
// Frames are only ever appended, so the one place a crash can leave damage
// is the tail: a header or payload cut short by a kill or a full disk. The
// length says where a frame ends and the checksum whether what is there is
// what was written; a reader stops at a cut-off frame and skips a frame
// whose checksum fails, and neither ever throws. The marker makes a reader
// that lands somewhere other than a frame start stop instead of reading
// garbage lengths.
import type { FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import type { AuditRecord } from "./record.js";

const MAGIC = 0x4d475331; // "MGS1": version 1 of the frame
export const FRAME_HEADER_BYTES = 12;
/** How much a reader fetches at once: sequential replay reads large chunks, not a header and a payload per record. */
const READ_CHUNK_BYTES = 1024 * 1024;

/** One record as a frame, ready to append. */
export function encodeFrame(record: AuditRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), "utf8");
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(MAGIC, 0);
  frame.writeUInt32BE(payload.length, 4);
  frame.writeUInt32BE(crc32(payload), 8);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export type Frame =
  /** A whole frame; `record` is present when the reader was asked to parse. */
  | { kind: "record"; record: AuditRecord | undefined; next: number }
  /** A whole frame whose content is damaged: skip it and go on at `next`. */
  | { kind: "damaged"; next: number; reason: string }
  /** Nothing more to read here: the end, or (with a reason) a cut-off or unreadable tail. */
  | { kind: "end"; reason?: string };

/**
 * Buffered positional reads of one file. It never reads past the `end` it
 * is given, so a chunk holds only bytes that were complete when read and
 * cannot go stale when a failed append is truncated and written again.
 */
export class FrameReader {
  readonly #handle: FileHandle;
  #chunk: Buffer = Buffer.alloc(0);
  #chunkStart = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  /** The frame at `offset`, reading no further than `end`. */
  async frameAt(offset: number, end: number, parse: boolean): Promise<Frame> {
    if (offset >= end) return { kind: "end" };
    if (end - offset < FRAME_HEADER_BYTES) return { kind: "end", reason: "a frame header cut short" };
    const header = await this.#bytes(offset, FRAME_HEADER_BYTES, end);
    if (header.readUInt32BE(0) !== MAGIC) return { kind: "end", reason: "no frame marker" };
    const length = header.readUInt32BE(4);
    const checksum = header.readUInt32BE(8);
    if (length > end - offset - FRAME_HEADER_BYTES) return { kind: "end", reason: "a frame cut short" };
    const next = offset + FRAME_HEADER_BYTES + length;
    const payload = await this.#bytes(offset + FRAME_HEADER_BYTES, length, end);
    if (crc32(payload) !== checksum) return { kind: "damaged", next, reason: "checksum mismatch" };
    if (!parse) return { kind: "record", record: undefined, next };
    let value: unknown;
    try {
      value = JSON.parse(payload.toString("utf8"));
    } catch {
      return { kind: "damaged", next, reason: "not JSON" };
    }
    // The worker validates records fully; here only what the spool itself relies on.
    if (typeof (value as { sessionId?: unknown } | null)?.sessionId !== "string") {
      return { kind: "damaged", next, reason: "not an audit record" };
    }
    return { kind: "record", record: value as AuditRecord, next };
  }

  async #bytes(position: number, length: number, end: number): Promise<Buffer> {
    const from = position - this.#chunkStart;
    if (from >= 0 && from + length <= this.#chunk.length) return this.#chunk.subarray(from, from + length);
    const size = Math.min(Math.max(length, READ_CHUNK_BYTES), end - position);
    const buffer = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await this.#handle.read(buffer, filled, size - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < length) throw new Error(`the spool file ended at ${position + filled}, before ${position + length}`);
    this.#chunk = buffer.subarray(0, filled);
    this.#chunkStart = position;
    return this.#chunk.subarray(0, length);
  }
}

export interface ScanResult {
  /** Whole, undamaged frames. */
  records: number;
  /** Where the last whole frame ends: reading stops here. */
  end: number;
  /** Frames skipped for a failed checksum or content, with their offsets. */
  damaged: { offset: number; reason: string }[];
  /** Set when bytes after `end` were left unread: a cut-off or unreadable tail. */
  tail?: { offset: number; bytes: number; reason: string } | undefined;
}

/** Walks a file's frames (checksums only, no parsing): how many records it holds and where they end. */
export async function scanFrames(handle: FileHandle, size: number): Promise<ScanResult> {
  const reader = new FrameReader(handle);
  const result: ScanResult = { records: 0, end: 0, damaged: [] };
  let offset = 0;
  for (;;) {
    const frame = await reader.frameAt(offset, size, false);
    if (frame.kind === "end") {
      if (frame.reason) result.tail = { offset, bytes: size - offset, reason: frame.reason };
      break;
    }
    if (frame.kind === "damaged") {
      if (result.damaged.length < 100) result.damaged.push({ offset, reason: frame.reason });
    } else result.records += 1;
    offset = frame.next;
    result.end = offset;
  }
  return result;
}
