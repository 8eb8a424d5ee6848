import { z } from "zod";

export const verifyQuery = z.strictObject({
  from: z
    .string()
    .regex(/^[1-9][0-9]{0,15}$/, "must be a chain sequence (a positive integer)")
    .transform((value) => BigInt(value))
    .optional()
    .describe(
      "start at this chain sequence, taking that session's prev_hash as given; default: after the latest retention checkpoint, or the first session",
    ),
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

export type VerifyQuery = z.output<typeof verifyQuery>;
