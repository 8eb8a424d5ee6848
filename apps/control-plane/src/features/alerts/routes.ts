import { defineRoute } from "../../http/route.js";
import { page, pageQuery, uuid } from "../../http/schemas.js";
import { alertListQuery, alertParams, alertRuleBody, alertRuleParams, alertRuleView, alertView } from "./schemas.js";
import type { AlertService } from "./service.js";

/** Alerts point at sessions and subjects: the roles that read sessions read them. */
const ALERT_READER_ROLES = ["admin", "auditor"] as const;

export function alertRoutes(service: AlertService) {
  return [
    defineRoute({
      method: "post",
      path: "/alert-rules",
      operationId: "createAlertRule",
      summary: "Add an alert rule: blocked_repeated, approval_requested or volume_spike",
      tag: "siem",
      role: "admin",
      body: alertRuleBody,
      response: { status: 201, description: "The new rule", schema: alertRuleView },
      errors: ["conflict"],
      handler: (context) => service.createRule(context.body, context),
    }),
    defineRoute({
      method: "get",
      path: "/alert-rules",
      operationId: "listAlertRules",
      summary: "List alert rules, oldest first",
      tag: "siem",
      role: "admin",
      query: pageQuery(uuid),
      response: { status: 200, description: "A page of rules", schema: page(alertRuleView) },
      handler: ({ query }) => service.listRules(query),
    }),
    defineRoute({
      method: "get",
      path: "/alert-rules/{id}",
      operationId: "getAlertRule",
      summary: "One alert rule",
      tag: "siem",
      role: "admin",
      params: alertRuleParams,
      response: { status: 200, description: "The rule", schema: alertRuleView },
      errors: ["not_found"],
      handler: ({ params }) => service.getRule(params.id),
    }),
    defineRoute({
      method: "put",
      path: "/alert-rules/{id}",
      operationId: "replaceAlertRule",
      summary: "Replace an alert rule (its kind stays)",
      tag: "siem",
      role: "admin",
      params: alertRuleParams,
      body: alertRuleBody,
      response: { status: 200, description: "The rule", schema: alertRuleView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.replaceRule(context.params.id, context.body, context),
    }),
    defineRoute({
      method: "delete",
      path: "/alert-rules/{id}",
      operationId: "deleteAlertRule",
      summary: "Delete an alert rule; the alerts it raised stay",
      tag: "siem",
      role: "admin",
      params: alertRuleParams,
      response: { status: 204, description: "Deleted" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.removeRule(context.params.id, context);
        return undefined;
      },
    }),
    defineRoute({
      method: "get",
      path: "/alerts",
      operationId: "listAlerts",
      summary: "Alerts raised by the rules, newest first",
      tag: "siem",
      role: ALERT_READER_ROLES,
      query: alertListQuery,
      response: { status: 200, description: "A page of alerts", schema: page(alertView) },
      handler: ({ query }) => service.listAlerts(query),
    }),
    defineRoute({
      method: "get",
      path: "/alerts/{id}",
      operationId: "getAlert",
      summary: "One alert with the sessions that triggered it",
      tag: "siem",
      role: ALERT_READER_ROLES,
      params: alertParams,
      response: { status: 200, description: "The alert", schema: alertView },
      errors: ["not_found"],
      handler: ({ params }) => service.getAlert(params.id),
    }),
  ];
}
