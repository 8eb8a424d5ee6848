// Runs the built CLI as a real process (`npm test` builds first), the way the
// demo setup and benchmarks start it.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import path from "node:path";
import { jsonOf, readFrames, sseData } from "./responses.js";

const CLI = path.resolve(import.meta.dirname, "../dist/cli.js");

function startCli(env: Record<string, string>): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? "", ...env } });
}

function collect(stream: NodeJS.ReadableStream): () => string {
  let text = "";
  stream.on("data", (chunk) => {
    text += chunk;
  });
  return () => text;
}

/** Resolves with the URL from the CLI's one line; rejects with its output if it exits or stays silent. */
function listeningUrl(child: ChildProcessWithoutNullStreams, output: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15 s: ${output()}`)), 15_000);
    const check = () => {
      const match = /^runtime fixture listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(output());
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      resolve(match[1]);
    };
    child.stdout.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening: ${output()}`));
    });
  });
}

describe("runtime fixture CLI", () => {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run the build first (npm test does)`);
  });

  it("starts from the environment, serves, and exits cleanly on SIGTERM", async () => {
    const child = startCli({ PORT: "0", MODELS: "alpha, beta", STREAM_CHUNKS: "3", CHUNK_INTERVAL_MS: "1" });
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    const url = await listeningUrl(child, stdout);

    const models = await jsonOf(await fetch(`${url}/v1/models`));
    expect(models.data.map((model: { id: string }) => model.id)).toEqual(["alpha", "beta"]);
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "beta", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    const chunks = sseData(await readFrames(response, "\n\n")) as Array<{
      choices: Array<{ delta: { content?: string } }>;
    }>;
    expect(chunks).toHaveLength(1 + 3 + 1);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toMatch(
      /^\[demo runtime\] This is the modelgate demo runtime — no model is running\./,
    );

    child.kill("SIGTERM");
    const [code, signal] = await once(child, "exit");
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stdout().split("\n").filter(Boolean)).toHaveLength(1);
    expect(stderr()).toBe("");
  });

  it("refuses an invalid variable with exit code 2 and names it", async () => {
    const child = startCli({ STREAM_CHUNKS: "0" });
    const stderr = collect(child.stderr);
    const [code] = await once(child, "exit");
    expect(code).toBe(2);
    expect(stderr()).toMatch(/STREAM_CHUNKS must be an integer from 1 to 10000/);
  });
});
