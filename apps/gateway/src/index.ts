export { type GatewayConfig, loadConfig } from "./config.js";
export {
  DEFAULT_AUDIT_MAX_BODY_BYTES,
  type GatewayAuditOptions,
  type GatewayOptions,
  type RunningGateway,
  startGateway,
} from "./gateway.js";
export { SESSION_HEADER } from "./ingress.js";
