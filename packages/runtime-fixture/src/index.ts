export { optionsFromEnv } from "./env.js";
export type { RuntimeFixtureOptions } from "./options.js";
export type { RecordedRequest } from "./recorder.js";
export { type RuntimeFixture, startRuntimeFixture } from "./server.js";
