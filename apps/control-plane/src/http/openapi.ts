import { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "./errors.js";
import { PROBLEM_CONTENT_TYPE, problemType } from "./problem.js";
import type { Route } from "./route.js";

/** Errors any authenticated JSON route can answer with. */
const COMMON_ERRORS: readonly ErrorCode[] = ["invalid_request", "unauthenticated", "forbidden", "internal"];
const BODY_ERRORS: readonly ErrorCode[] = ["malformed_json", "payload_too_large", "unsupported_media_type"];

const problemSchema = {
  type: "object",
  required: ["type", "title", "status", "code", "detail", "requestId"],
  properties: {
    type: { type: "string", description: "urn:modelgate:problem:<code>" },
    title: { type: "string" },
    status: { type: "integer" },
    code: { type: "string", enum: Object.keys(ERROR_STATUS) },
    detail: { type: "string" },
    requestId: { type: "string" },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["path", "message"],
        properties: { path: { type: "string" }, message: { type: "string" } },
      },
    },
  },
} as const;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  return rest;
}

function parameters(schema: z.ZodType | undefined, location: "path" | "query") {
  if (!schema) return [];
  const document = jsonSchema(schema, "input") as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(document.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === "path" || (document.required ?? []).includes(name),
    schema: property,
    ...(typeof property.description === "string" ? { description: property.description } : {}),
  }));
}

/** Builds the OpenAPI 3.1 document from the same route declarations that are mounted. */
export function buildOpenApiDocument(routes: readonly Route[], options: { basePath: string; version: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const errorCodes = new Set<ErrorCode>([
      ...COMMON_ERRORS,
      ...(route.schemas.body ? BODY_ERRORS : []),
      ...route.errors,
    ]);
    const content: Record<string, unknown> = {};
    if (route.schemas.response) content["application/json"] = { schema: jsonSchema(route.schemas.response, "output") };
    for (const [contentType, description] of Object.entries(route.responseStreams)) {
      content[contentType] = { schema: { type: "string", description } };
    }
    const responses: Record<string, unknown> = {
      [route.responseStatus]: {
        description: route.responseDescription,
        ...(Object.keys(content).length > 0 ? { content } : {}),
      },
    };
    for (const code of errorCodes) {
      const status = String(ERROR_STATUS[code]);
      const existing = responses[status] as { description: string } | undefined;
      responses[status] = {
        description: existing ? `${existing.description}, ${code}` : code,
        content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: "#/components/schemas/Problem" } } },
      };
    }
    const pathItem = paths[`${options.basePath}${route.path}`] ?? {};
    pathItem[route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      security: [{ bearer: [] }],
      parameters: [...parameters(route.schemas.params, "path"), ...parameters(route.schemas.query, "query")],
      ...(route.schemas.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: jsonSchema(route.schemas.body, "input") } },
            },
          }
        : {}),
      responses,
    };
    paths[`${options.basePath}${route.path}`] = pathItem;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "modelgate control plane",
      version: options.version,
      description: `Errors are application/problem+json; their \`type\` is ${problemType("not_found").replace("not_found", "<code>")}. The gateway's own routes are described by its document, GET /openapi.json on the gateway.`,
    },
    servers: [
      {
        url: "{controlPlane}",
        description: "The control plane's public listener (MODELGATE_PUBLIC_URL behind a proxy)",
        variables: { controlPlane: { default: "http://127.0.0.1:8081", description: "The control plane's base URL" } },
      },
    ],
    paths,
    components: {
      schemas: { Problem: problemSchema },
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
  };
}
