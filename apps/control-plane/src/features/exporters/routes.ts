import { defineRoute } from "../../http/route.js";
import { page, pageQuery, uuid } from "../../http/schemas.js";
import { createdExporterView, exporterBody, exporterParams, exporterView, testResultView } from "./schemas.js";
import type { ExporterService } from "./service.js";

export function exporterRoutes(service: ExporterService) {
  return [
    defineRoute({
      method: "post",
      path: "/exporters",
      operationId: "createExporter",
      summary: "Add a SIEM destination (signed webhook or syslog); a generated webhook secret is shown once",
      tag: "siem",
      role: "admin",
      body: exporterBody,
      response: { status: 201, description: "The new exporter", schema: createdExporterView },
      errors: ["conflict"],
      handler: (context) => service.create(context.body, context),
    }),
    defineRoute({
      method: "get",
      path: "/exporters",
      operationId: "listExporters",
      summary: "List exporters with their delivery state, oldest first",
      tag: "siem",
      role: "admin",
      query: pageQuery(uuid),
      response: { status: 200, description: "A page of exporters", schema: page(exporterView) },
      handler: ({ query }) => service.list(query),
    }),
    defineRoute({
      method: "get",
      path: "/exporters/{id}",
      operationId: "getExporter",
      summary: "One exporter, with delivered and failed counts and the last error",
      tag: "siem",
      role: "admin",
      params: exporterParams,
      response: { status: 200, description: "The exporter", schema: exporterView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.id),
    }),
    defineRoute({
      method: "put",
      path: "/exporters/{id}",
      operationId: "replaceExporter",
      summary: "Replace an exporter's settings (its kind stays; a webhook keeps its secret unless given a new one)",
      tag: "siem",
      role: "admin",
      params: exporterParams,
      body: exporterBody,
      response: { status: 200, description: "The exporter", schema: exporterView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.replace(context.params.id, context.body, context),
    }),
    defineRoute({
      method: "delete",
      path: "/exporters/{id}",
      operationId: "deleteExporter",
      summary: "Delete an exporter; its queued deliveries are dropped",
      tag: "siem",
      role: "admin",
      params: exporterParams,
      response: { status: 204, description: "Deleted" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.remove(context.params.id, context);
        return undefined;
      },
    }),
    defineRoute({
      method: "post",
      path: "/exporters/{id}/test",
      operationId: "testExporter",
      summary: "Send a test event now and report whether it arrived",
      tag: "siem",
      role: "admin",
      params: exporterParams,
      response: { status: 200, description: "The outcome", schema: testResultView },
      errors: ["not_found"],
      handler: ({ params }) => service.test(params.id),
    }),
  ];
}
