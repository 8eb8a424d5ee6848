import type { z } from "zod";
import { type PolicyDefinition, policyDefinitionSchema, type StoredPolicy, type Subject } from "../src/index.js";

type DefinitionInput = z.input<typeof policyDefinitionSchema>;

let counter = 0;

/** A stored policy from a partial document; ids sort in creation order. */
export function policy(
  name: string,
  definition: Partial<DefinitionInput> = {},
  extra: Partial<Omit<StoredPolicy, "definition">> = {},
): StoredPolicy {
  counter += 1;
  const parsed: PolicyDefinition = policyDefinitionSchema.parse({
    subjects: { groups: ["data-science"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    ...definition,
  });
  return {
    id: extra.id ?? `policy-${String(counter).padStart(4, "0")}`,
    name,
    revision: 1,
    enabled: true,
    ...extra,
    definition: parsed,
  };
}

export const alice: Subject = { userId: "u-alice", email: "Alice@Example.com", groups: ["data-science"] };
export const bob: Subject = { userId: "u-bob", email: "bob@example.com", groups: ["marketing"] };

export function chat(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: "llama-3.1-8b-instruct", messages: [{ role: "user", content }], ...extra };
}
