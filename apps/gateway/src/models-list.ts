// `GET /v1/models`, answered by the gateway itself: only the models the
// caller may list. Least privilege also hides what exists.
import type { Subject } from "@modelgate/policy";
import type { ConfigStore } from "./config-store.js";

export interface ListedModel {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

export function listModels(store: Pick<ConfigStore, "connections" | "policies">, subject: Subject): ListedModel[] {
  const data: ListedModel[] = [];
  for (const connection of store.connections()) {
    for (const model of store.policies.allowedModels(subject, connection.name, connection.models, "models.list")) {
      data.push({ id: `${connection.name}/${model}`, object: "model", created: 0, owned_by: connection.name });
    }
  }
  return data;
}
