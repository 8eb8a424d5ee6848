export { type ControlPlaneConfig, loadConfig } from "./config.js";
export { type ControlPlaneOptions, type RunningControlPlane, startControlPlane } from "./server.js";
export { VERSION } from "./version.js";
