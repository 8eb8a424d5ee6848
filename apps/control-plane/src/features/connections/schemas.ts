import { z } from "zod";
import { label, resourceName, timestamp, uniqueList } from "../../http/schemas.js";

const protocol = z.enum(["openai", "ollama", "tgi", "http"]);

/** Model ids as runtimes spell them: `llama3.1:8b`, `meta-llama/Llama-3.1-8B-Instruct`. */
const modelName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}$/, "must be 1-256 characters of letters, digits and ._:/@+-");

const models = uniqueList(modelName, 1000).min(1, "list at least one model");
const description = label(1024);

export const createConnectionBody = z.strictObject({
  name: resourceName,
  protocol,
  models,
  description: description.optional(),
});

export const updateConnectionBody = z
  .strictObject({
    protocol: protocol.optional(),
    models: models.optional(),
    description: description.nullable().optional().describe("null clears it"),
  })
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), "change at least one field");

export const connectionParams = z.strictObject({ name: resourceName });

export const connectionView = z.object({
  name: z.string(),
  protocol,
  models: z.array(z.string()),
  description: z.string().nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export type CreateConnection = z.output<typeof createConnectionBody>;
export type UpdateConnection = z.output<typeof updateConnectionBody>;
export type ConnectionView = z.output<typeof connectionView>;
