import path from "node:path";
import { ConfigError } from "@modelgate/core";
import { loadConfig, redactConfig } from "./config.js";

const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");

test("needs no environment at all", () => {
  expect(loadConfig({})).toEqual({
    host: "127.0.0.1",
    ports: {
      gateway: 8080,
      controlPlane: 8081,
      controlPlaneGrpc: 8082,
      tunnel: 8443,
      gatewayOps: 9080,
      controlPlaneOps: 9081,
      agentOps: 9082,
    },
    dataDir: path.join(REPO_ROOT, ".data"),
    database: { kind: "embedded", port: 54329 },
    runtime: { kind: "demo" },
    logLevel: "warn",
  });
});

test("a runtime on Ollama's port is taken for Ollama, with its health path", () => {
  expect(loadConfig({ MODELGATE_RUNTIME_URL: "http://127.0.0.1:11434" }).runtime).toEqual({
    kind: "external",
    url: "http://127.0.0.1:11434",
    protocol: "ollama",
    models: undefined,
    apiKey: undefined,
    healthPath: "/",
  });
});

test("any other runtime is taken for OpenAI-compatible; listed models are trimmed and deduplicated", () => {
  const { runtime } = loadConfig({
    MODELGATE_RUNTIME_URL: "http://gpu-box:8000",
    MODELGATE_RUNTIME_MODELS: " meta-llama/Llama-3.1-8B-Instruct, ,qwen,qwen ",
    MODELGATE_RUNTIME_API_KEY: "runtime-secret",
  });
  expect(runtime).toMatchObject({
    protocol: "openai",
    models: ["meta-llama/Llama-3.1-8B-Instruct", "qwen"],
    apiKey: "runtime-secret",
    healthPath: "/health",
  });
});

test("refuses runtime settings without a runtime URL, and a URL ending in /v1", () => {
  expect(() => loadConfig({ MODELGATE_RUNTIME_MODELS: "llama3" })).toThrow(
    /MODELGATE_RUNTIME_MODELS: only applies with MODELGATE_RUNTIME_URL/,
  );
  expect(() => loadConfig({ MODELGATE_RUNTIME_URL: "http://127.0.0.1:8000/v1/" })).toThrow(ConfigError);
  expect(() => loadConfig({ MODELGATE_RUNTIME_URL: "http://127.0.0.1:8000", MODELGATE_RUNTIME_MODELS: " , " })).toThrow(
    /list at least one model/,
  );
  expect(() => loadConfig({ MODELGATE_EMBEDDED_POSTGRES_PORT: "0" })).toThrow(/MODELGATE_EMBEDDED_POSTGRES_PORT/);
});

test("DATABASE_URL replaces the embedded Postgres, and is logged without its password", () => {
  const config = loadConfig({
    DATABASE_URL: "postgresql://app:s3cret@db:5432/modelgate",
    MODELGATE_RUNTIME_URL: "http://127.0.0.1:8000",
    MODELGATE_RUNTIME_MODELS: "m",
    MODELGATE_RUNTIME_API_KEY: "runtime-secret",
  });
  expect(config.database).toEqual({ kind: "external", url: "postgresql://app:s3cret@db:5432/modelgate" });
  const logged = JSON.stringify(redactConfig(config));
  expect(logged).not.toContain("s3cret");
  expect(logged).not.toContain("runtime-secret");
});
