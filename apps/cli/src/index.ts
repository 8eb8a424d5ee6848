export { createApiClient } from "./api.js";
export { EXIT } from "./errors.js";
export { buildProgram } from "./program.js";
