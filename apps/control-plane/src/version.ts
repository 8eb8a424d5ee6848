/** Reported in the OpenAPI document and, later, to agents and gateways. */
export const VERSION = "0.1.0";
