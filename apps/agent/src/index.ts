export { type AgentOptions, type RunningAgent, startAgent } from "./agent.js";
export { type AgentConfig, loadConfig } from "./config.js";
export { startAgentOps } from "./ops.js";
export type { RuntimeCredential } from "./runtime-client.js";
