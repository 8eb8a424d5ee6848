import { randomUUID } from "node:crypto";
import type { RequestHandler, Response } from "express";

const REQUEST_ID_HEADER = "x-request-id";
/** An inbound id is reused only if it is short and harmless in logs. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Gives every request an id, echoed in `x-request-id`, in logs and in error bodies. */
export const assignRequestId: RequestHandler = (req, res, next) => {
  const inbound = req.get(REQUEST_ID_HEADER);
  const id = inbound && ACCEPTABLE_REQUEST_ID.test(inbound) ? inbound : randomUUID();
  res.locals.requestId = id;
  res.setHeader(REQUEST_ID_HEADER, id);
  next();
};

export function requestIdOf(res: Response): string {
  return typeof res.locals.requestId === "string" ? res.locals.requestId : "unknown";
}
