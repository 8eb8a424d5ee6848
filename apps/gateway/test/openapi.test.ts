// The gateway's OpenAPI document: served without credentials on the public
// port, of OpenAPI 3.1's shape, naming every error code with its status,
// every model route and the credentials each accepts.
import { GATEWAY_ERRORS } from "../src/errors.js";
import { MODEL_ROUTES } from "../src/route.js";
import { type Stack, startStack } from "./stack.js";

let stack: Stack;
// biome-ignore lint/suspicious/noExplicitAny: the document is parsed JSON, asserted part by part
let document: any;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  const response = await fetch(`${stack.gateway.url}/openapi.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("application/json");
  document = await response.json();
});

afterAll(async () => {
  await stack?.close();
});

const METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

/** Every `$ref` in the document, with where it points. */
function refs(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) refs(item, found);
  else if (typeof value === "object" && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === "$ref" && typeof child === "string") found.push(child);
      else refs(child, found);
    }
  }
  return found;
}

describe("GET /openapi.json", () => {
  it("is an OpenAPI 3.1 document: info, servers with a default, paths of operations with responses, resolvable refs", () => {
    expect(document.openapi).toBe("3.1.0");
    expect(document.info).toMatchObject({ title: "modelgate gateway", version: "test" });
    // The project has no license yet: none is claimed.
    expect(document.info.license).toBeUndefined();
    expect(document.servers).toEqual([
      expect.objectContaining({
        url: "{gateway}",
        variables: { gateway: expect.objectContaining({ default: "http://127.0.0.1:8080" }) },
      }),
    ]);
    const operationIds = new Set<string>();
    for (const [path, item] of Object.entries<Record<string, { operationId: string; responses: object }>>(
      document.paths,
    )) {
      expect(path.startsWith("/")).toBe(true);
      for (const [method, operation] of Object.entries(item)) {
        expect(METHODS.has(method)).toBe(true);
        expect(Object.keys(operation.responses).length).toBeGreaterThan(0);
        expect(operationIds.has(operation.operationId)).toBe(false);
        operationIds.add(operation.operationId);
      }
      // Every path template variable is declared as a path parameter.
      for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
        for (const operation of Object.values(item) as { parameters?: { name?: string; in?: string }[] }[]) {
          expect(operation.parameters).toContainEqual(expect.objectContaining({ name, in: "path" }));
        }
      }
    }
    for (const ref of refs(document)) {
      const target = ref
        .replace(/^#\//, "")
        .split("/")
        .reduce((node, key) => node?.[key], document);
      expect({ ref, resolved: target !== undefined }).toEqual({ ref, resolved: true });
    }
  });

  it("names every error code of the gateway's table with its status", () => {
    expect(document.components.schemas.ErrorCode.enum).toEqual(Object.keys(GATEWAY_ERRORS));
    for (const [code, { status }] of Object.entries(GATEWAY_ERRORS)) {
      expect(document.components.responses[`Error${status}`].description).toContain(`\`${code}\``);
      expect(document.components.responses[`AnthropicError${status}`].description).toContain(`\`${code}\``);
      expect(document.components.schemas.ErrorCode["x-modelgate-status"][code]).toBe(status);
    }
  });

  it("describes every model route, the models routes, the native pass-through and the open routes", () => {
    for (const path of MODEL_ROUTES) expect(document.paths[path].post).toBeDefined();
    expect(document.paths["/v1/models"].get).toBeDefined();
    expect(document.paths["/v1/models/{id}"].get.responses["404"]).toBeDefined();
    expect(Object.keys(document.paths["/c/{connection}/{path}"])).toEqual(
      expect.arrayContaining(["get", "post", "delete"]),
    );
    expect(document.paths["/healthz"].get.security).toEqual([]);
    expect(document.paths["/openapi.json"].get.security).toEqual([]);
  });

  it("names the credentials, the session header and Prefer: wait", () => {
    expect(document.security).toEqual([{ bearer: [] }]);
    expect(document.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(document.paths["/v1/messages"].post.security).toEqual([{ bearer: [] }, { anthropicApiKey: [] }]);
    expect(document.components.securitySchemes.anthropicApiKey).toMatchObject({ in: "header", name: "x-api-key" });
    expect(document.paths["/v1/chat/completions"].post.responses["200"].headers["x-modelgate-session"]).toEqual({
      $ref: "#/components/headers/Session",
    });
    expect(document.components.parameters.Prefer).toMatchObject({ name: "Prefer", in: "header" });
    expect(document.paths["/v1/messages"].post.responses["403"]).toEqual({
      $ref: "#/components/responses/AnthropicError403",
    });
  });
});
