// policies list|get|apply|diff|eval. `apply` is declarative: the file says
// which policies should exist and what they hold; policies are matched by
// name, created when missing, replaced when different and left alone (not
// even their revision moves) when equal. Policies the file does not name
// are not touched.
import { readFile } from "node:fs/promises";
import { policyInputSchema } from "@modelgate/policy";
import type { Command } from "commander";
import type { ApiClient } from "../api.js";
import { allPages, contextOf, examples, repeatable } from "../context.js";
import { CliError, EXIT } from "../errors.js";

interface PolicyRow extends Record<string, unknown> {
  id: string;
  name: string;
  enabled: boolean;
  revision: number;
  description: string | null;
}

/** The fields a policy file sets: the API's policy body, as @modelgate/policy defines it. */
type Desired = Record<string, unknown> & { name: string };

interface PlannedChange {
  name: string;
  action: "create" | "update" | "unchanged";
  id?: string;
  /** For updates: each top-level field that differs, current and desired. */
  fields?: { field: string; current: unknown; desired: unknown }[];
}

/** A file of one policy, a list of them, or `{ "policies": [...] }`, each checked as the API would. */
async function readPolicyFile(file: string): Promise<Desired[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`, EXIT.usage);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${file} is not valid JSON: ${(error as Error).message}`, EXIT.usage);
  }
  const list = Array.isArray(document)
    ? document
    : document !== null && typeof document === "object" && Array.isArray((document as { policies?: unknown }).policies)
      ? (document as { policies: unknown[] }).policies
      : [document];
  const issues: string[] = [];
  const policies: Desired[] = [];
  for (const [index, item] of list.entries()) {
    const parsed = policyInputSchema.safeParse(item);
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        issues.push(`policies[${index}].${issue.path.join(".")}: ${issue.message}`);
      continue;
    }
    policies.push(parsed.data as Desired);
  }
  const names = policies.map((policy) => policy.name);
  const repeated = names.filter((name, index) => names.indexOf(name) !== index);
  for (const name of new Set(repeated)) issues.push(`the name "${name}" is used more than once`);
  if (issues.length > 0) throw new CliError(`${file} has invalid policies; nothing was changed`, EXIT.usage, issues);
  return policies;
}

/** A value with empty members (null, undefined) left out and object keys sorted: equal policies compare equal. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  const result: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && item !== undefined) result[key] = canonical(item);
  }
  return result;
}
/** Equal as policies: a missing field and a null one are the same (none). */
const same = (a: unknown, b: unknown) => JSON.stringify(canonical(a ?? null)) === JSON.stringify(canonical(b ?? null));

/** What the control plane adds to a policy; everything else is the policy as written, compared whole. */
const SERVER_FIELDS = new Set(["id", "revision", "createdAt", "updatedAt"]);

async function planPolicies(api: ApiClient, desired: readonly Desired[]): Promise<PlannedChange[]> {
  const current = await allPages<PolicyRow>(api, "/policies");
  const byName = new Map(current.map((policy) => [policy.name, policy]));
  return desired.map((policy) => {
    const existing = byName.get(policy.name);
    if (!existing) return { name: policy.name, action: "create" as const };
    // Every field of either side: one the file leaves out (masking, an
    // approval) is removed by the replace, so it is a change, and shown.
    const names = new Set(
      [...Object.keys(policy), ...Object.keys(existing)].filter((name) => !SERVER_FIELDS.has(name)),
    );
    const fields = [...names]
      .filter((field) => !same(existing[field], policy[field]))
      .map((field) => ({ field, current: existing[field] ?? null, desired: policy[field] ?? null }));
    return fields.length === 0
      ? { name: policy.name, action: "unchanged" as const, id: existing.id }
      : { name: policy.name, action: "update" as const, id: existing.id, fields };
  });
}

function describePlan(out: ReturnType<typeof contextOf>["out"], plan: readonly PlannedChange[], applied: boolean) {
  for (const change of plan) {
    const verb =
      change.action === "create"
        ? applied
          ? "created"
          : "would create"
        : change.action === "update"
          ? applied
            ? "updated"
            : "would update"
          : "unchanged";
    out.line(`${verb.padEnd(12)} ${change.name}`);
    for (const field of change.fields ?? []) {
      out.line(`  ${field.field}:`);
      out.line(`    - ${JSON.stringify(field.current)}`);
      out.line(`    + ${JSON.stringify(field.desired)}`);
    }
  }
  const changed = plan.filter((change) => change.action !== "unchanged").length;
  if (changed === 0) out.line("Nothing to change: the control plane already holds these policies.");
}

export function registerPolicies(program: Command): void {
  const policies = program.command("policies").description("Group policies: who may use what, and how");
  examples(
    policies
      .command("list")
      .description("Every policy")
      .action(async (_options, command: Command) => {
        const { out, api } = contextOf(command);
        const rows = await allPages<PolicyRow & { subjects?: { groups?: string[] } }>(await api(), "/policies");
        out.result(rows, () =>
          out.table(rows, [
            { title: "id", value: (row) => row.id },
            { title: "name", value: (row) => row.name },
            { title: "enabled", value: (row) => (row.enabled ? "yes" : "no") },
            { title: "groups", value: (row) => row.subjects?.groups?.join(", ") },
            { title: "revision", value: (row) => row.revision },
          ]),
        );
      }),
    ["modelgate policies list"],
  );
  examples(
    policies
      .command("get <id-or-name>")
      .description("One policy as JSON (the form `apply` reads)")
      .action(async (key: string, _options, command: Command) => {
        const { out, api: client } = contextOf(command);
        const api = await client();
        const policy = await findPolicy(api, key);
        const { id: _id, revision: _revision, createdAt: _created, updatedAt: _updated, ...document } = policy;
        out.line(JSON.stringify(out.json ? policy : canonical(document), null, 2));
      }),
    ["modelgate policies get ds-llama > ds-llama.json"],
  );
  examples(
    policies
      .command("diff")
      .description("What `apply` would change, without changing it (exit 0 either way)")
      .requiredOption("-f, --file <file>", "a JSON file: one policy, a list, or { policies: [...] }")
      .action(async (options: { file: string }, command: Command) => {
        const { out, api } = contextOf(command);
        const desired = await readPolicyFile(options.file);
        const plan = await planPolicies(await api(), desired);
        out.result(plan, () => describePlan(out, plan, false));
      }),
    ["modelgate policies diff -f policies.json"],
  );
  examples(
    policies
      .command("apply")
      .description("Make the control plane hold the file's policies: create, replace or leave each (idempotent)")
      .requiredOption("-f, --file <file>", "a JSON file: one policy, a list, or { policies: [...] }")
      .action(async (options: { file: string }, command: Command) => {
        const { out, api: client } = contextOf(command);
        const api = await client();
        const desired = await readPolicyFile(options.file);
        const plan = await planPolicies(api, desired);
        for (const change of plan) {
          const policy = desired.find((item) => item.name === change.name) as Desired;
          if (change.action === "create") change.id = (await api.post<PolicyRow>("/policies", policy)).id;
          if (change.action === "update") await api.put(`/policies/${change.id}`, policy);
        }
        out.result(plan, () => describePlan(out, plan, true));
      }),
    ["modelgate policies apply -f policies.json", "modelgate policies apply -f policies.json --json | jq '.[].action'"],
  );
  examples(
    policies
      .command("eval")
      .description("Dry-run: what the gateway would decide for a caller and a request, and why")
      .requiredOption("--connection <name>", "the connection requested")
      .option("--group <group>", "a group of the caller (repeat for several)", repeatable)
      .option("--email <email>", "the caller's email")
      .option("--model <model>", "the model requested")
      .option("--operation <operation>", "inference, embeddings, models.list, …", "inference")
      .option("--body <file>", "a JSON file with the request body the caller would send")
      .action(async (options, command: Command) => {
        const { out, api } = contextOf(command);
        let body: unknown;
        if (options.body) {
          try {
            body = JSON.parse(await readFile(options.body, "utf8"));
          } catch (error) {
            throw new CliError(`cannot read the body from ${options.body}: ${(error as Error).message}`, EXIT.usage);
          }
        }
        const evaluation = await (await api()).post<{
          decision: string;
          code?: string;
          reasons: string[];
          policyIds: string[];
        }>("/policies/evaluate", {
          subject: { groups: options.group ?? [], ...(options.email ? { email: options.email } : {}) },
          request: {
            connection: options.connection,
            operation: options.operation,
            ...(options.model ? { model: options.model } : {}),
            ...(body === undefined ? {} : { body }),
          },
        });
        out.result(evaluation, () => {
          out.line(`${evaluation.decision}${evaluation.code ? ` (${evaluation.code})` : ""}`);
          for (const reason of evaluation.reasons) out.line(`  ${reason}`);
        });
      }),
    ["modelgate policies eval --group data-science --connection llama --model llama-3.1-8b-instruct"],
  );
}

async function findPolicy(api: ApiClient, key: string): Promise<PolicyRow> {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(key)) {
    return api.get<PolicyRow>(`/policies/${key}`);
  }
  const match = (await allPages<PolicyRow>(api, "/policies")).find((policy) => policy.name === key);
  if (!match) throw new CliError(`no policy named ${key}; \`modelgate policies list\` shows them`, EXIT.notFound);
  return match;
}
