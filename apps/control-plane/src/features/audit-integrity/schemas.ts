import { z } from "zod";

export const verifyQuery = z
  .strictObject({
    from: z
      .string()
      .regex(/^[1-9][0-9]{0,15}$/, "must be a chain sequence (a positive integer)")
      .transform((value) => BigInt(value))
      .optional()
      .describe(
        "start at this chain sequence, taking that session's prev_hash as given (unless prevHash says what it must be); default: after the latest retention checkpoint, or the first session",
      ),
    prevHash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "must be a SHA-256 hash in lowercase hex")
      .optional()
      .describe(
        "with from: the prev_hash the session at from must carry (the headHash of the previous part of a walk)",
      ),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(10_000_000)
      .optional()
      .describe("check at most this many sessions; the report then says complete: false and where to go on"),
  })
  .refine((query) => query.prevHash === undefined || query.from !== undefined, {
    message: "prevHash needs from",
    path: ["prevHash"],
  });

const chainStart = z.object({
  kind: z.enum(["genesis", "checkpoint", "from"]),
  chainSeq: z.number().int().describe("the first sequence checked"),
  prevHash: z.string().nullable().describe("the prev_hash the first session must carry (null for from)"),
  checkpointAt: z.string().optional().describe("when the retention checkpoint was written"),
});

export const verifyReport = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("ok"),
    checked: z.number().int().describe("sessions whose links were recomputed"),
    start: chainStart,
    lastChainSeq: z.number().int(),
    headHash: z.string().nullable().describe("hash of the last session checked: record it to compare later runs"),
    contentPurged: z.number().int().describe("sessions checked through their stored content digest (bodies purged)"),
    complete: z
      .boolean()
      .describe("false when limit stopped the walk: go on from lastChainSeq + 1 with prevHash set to headHash"),
    headChainSeq: z.number().int().describe("the chain head's sequence when the walk began: how far there is to go"),
  }),
  z.object({
    status: z.literal("broken"),
    checked: z.number().int().describe("sessions verified before the first broken link"),
    start: chainStart,
    firstBrokenAt: z.object({
      sessionId: z.string().nullable(),
      chainSeq: z.number().int(),
      reason: z.enum(["hash_mismatch", "prev_hash_mismatch", "missing_link", "head_mismatch", "search_text_mismatch"]),
      part: z.enum(["metadata", "content"]).optional(),
      detail: z.string(),
    }),
    contentPurged: z.number().int(),
  }),
]);
