import { Prisma } from "@modelgate/db";

/** True for a unique-constraint violation (Prisma's P2002), whatever the driver. */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002";
}
