import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { checkPromptPatterns, type PolicyDefinition, policyDefinitionSchema } from "../src/index.js";

function definition(rules: { pattern: string; flags?: string }[]): PolicyDefinition {
  return {
    ...policyDefinitionSchema.parse({
      subjects: { groups: ["g"] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
    }),
    // Built directly, not parsed: the check must stand on its own even for
    // a definition that skipped the schema.
    promptRules: rules.map((rule) => ({ flags: "", action: "block" as const, ...rule })),
  };
}

/**
 * Room for recheck on a loaded CI machine: these tests are about its
 * verdicts, and a timeout (refused as "not established in time") is a
 * different verdict. The timeout itself has its own test below.
 */
const PATIENT = { timeoutMs: 15_000, budgetMs: 15_000 };

describe("checkPromptPatterns", () => {
  it("accepts patterns recheck proves safe", async () => {
    const issues = await checkPromptPatterns(
      definition([
        { pattern: "(export|dump) (all|every)", flags: "i" },
        { pattern: "ignore (all )?previous instructions", flags: "i" },
        { pattern: "^begin secret$", flags: "m" },
        { pattern: "\\b\\d{3}-\\d{2}-\\d{4}\\b" },
      ]),
      PATIENT,
    );
    expect(issues).toEqual([]);
  });

  it("refuses an exponential pattern, naming the complexity and an attack", async () => {
    const issues = await checkPromptPatterns(definition([{ pattern: "ok" }, { pattern: "(a+)+$" }]), PATIENT);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("promptRules.1.pattern");
    expect(issues[0]?.message).toMatch(/exponential/);
    expect(issues[0]?.message).toMatch(/repeat/);
  });

  it("refuses polynomial patterns: an unanchored e-mail matcher is quadratic", async () => {
    const issues = await checkPromptPatterns(definition([{ pattern: "[a-z]+@[a-z]+\\.com" }]), PATIENT);
    expect(issues).toEqual([
      { path: "promptRules.0.pattern", message: expect.stringMatching(/polynomial \(degree 2\)/) },
    ]);
    // So is `^\s*` under the m flag: every line start rescans the same white space.
    const multiline = await checkPromptPatterns(
      definition([{ pattern: "^\\s*ignore previous", flags: "im" }]),
      PATIENT,
    );
    expect(multiline).toEqual([{ path: "promptRules.0.pattern", message: expect.stringMatching(/polynomial/) }]);
  });

  it("refuses patterns that do not compile with the u flag, and forbidden flags", async () => {
    const issues = await checkPromptPatterns(
      definition([{ pattern: "(unclosed" }, { pattern: "\\-" }, { pattern: "x", flags: "g" }]),
    );
    expect(issues).toEqual([
      { path: "promptRules.0.pattern", message: expect.stringMatching(/^does not compile/) },
      { path: "promptRules.1.pattern", message: expect.stringMatching(/^does not compile/) },
      { path: "promptRules.2.flags", message: expect.stringMatching(/flags i, m and s/) },
    ]);
  });

  it("refuses what it cannot decide in time", async () => {
    // Large bounded repetitions make the analysis slow; 1 ms is not enough.
    const issues = await checkPromptPatterns(definition([{ pattern: "a{1,1000}b{1,1000}c{1,1000}x" }]), {
      timeoutMs: 1,
    });
    expect(issues).toEqual([
      { path: "promptRules.0.pattern", message: expect.stringMatching(/could not be established/) },
    ]);
  });

  it("stops when the budget for the whole definition is spent", async () => {
    const issues = await checkPromptPatterns(definition([{ pattern: "never-seen-before-1" }]), { budgetMs: 0 });
    expect(issues).toEqual([{ path: "promptRules.0.pattern", message: expect.stringMatching(/took too long/) }]);
  });

  it("answers when the budget's remainder is a fraction of a millisecond (the checker hangs on those)", async () => {
    const issues = await checkPromptPatterns(definition([{ pattern: "fraction-of-a-ms-(a|b)c" }]), {
      timeoutMs: 15_000,
      budgetMs: 9_999.5,
    });
    expect(issues).toEqual([]);
  });

  it("gives the same verdict the second time (from its cache)", async () => {
    const rules = definition([{ pattern: "(x+x+)+y" }, { pattern: "plain" }]);
    const first = await checkPromptPatterns(rules, PATIENT);
    const second = await checkPromptPatterns(rules, { budgetMs: 0 });
    expect(second).toEqual(first);
    expect(first.map((issue) => issue.path)).toEqual(["promptRules.0.pattern"]);
  });
});

describe("the pattern checker's loading", () => {
  it("is not loaded with the package: gateways import it and never check a pattern", async () => {
    // A fresh process records every module it resolves while it imports the
    // built package, then checks one pattern.
    const entry = new URL("../dist/index.js", import.meta.url).href;
    const script = `
      import { registerHooks } from "node:module";
      const resolved = [];
      registerHooks({ resolve(specifier, context, next) { resolved.push(specifier); return next(specifier, context); } });
      const policy = await import(${JSON.stringify(entry)});
      const atImport = resolved.includes("recheck");
      const base = policy.policyDefinitionSchema.parse({
        subjects: { groups: ["g"] }, resources: [{ connection: "llama" }], operations: ["inference"],
      });
      const issues = await policy.checkPromptPatterns({
        ...base, promptRules: [{ pattern: "(a+)+$", flags: "", action: "block" }],
      });
      console.log(JSON.stringify({ atImport, afterCheck: resolved.includes("recheck"), issues: issues.length }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
    expect(JSON.parse(stdout)).toEqual({ atImport: false, afterCheck: true, issues: 1 });
  });
});
