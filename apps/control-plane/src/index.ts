export { describeApi } from "./app.js";
export { type ControlPlaneConfig, loadConfig } from "./config.js";
// Anything that changes what gateways enforce outside the API (an import
// script, a migration of data) records it the same way, or gateways never
// hear of it.
export { type ConfigChange, type ConfigEntityKind, recordConfigChange } from "./gateway-link/changes.js";
export { type ControlPlaneOptions, type RunningControlPlane, startControlPlane } from "./server.js";
export { VERSION } from "./version.js";
