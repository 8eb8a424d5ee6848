export { type GatewayConfig, loadConfig } from "./config.js";
export { type GatewayOptions, type RunningGateway, startGateway } from "./gateway.js";
export { SESSION_HEADER } from "./ingress.js";
