// One Jest config for the whole repository. Tests run as native ES modules
// (the project is ESM throughout, and openid-client, jose and oidc-provider
// ship only ESM); @swc/jest strips types without type-checking, which
// `npm run typecheck` does separately.
/** @type {import('jest').Config} */
export default {
  testEnvironment: "node",
  // Workspace packages resolve to their TypeScript sources, not to dist/.
  testEnvironmentOptions: { customExportConditions: ["source", "node", "node-addons"] },
  // Each workspace runs Jest with its own folder as rootDir (see its "test" script).
  roots: ["<rootDir>"],
  testMatch: ["**/?(*.)test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      {
        jsc: { parser: { syntax: "typescript" }, target: "es2023" },
        module: { type: "es6" },
        sourceMaps: "inline",
      },
    ],
  },
  // Every test file opens real sockets and databases; give slow shared
  // machines room without hiding hangs.
  testTimeout: 20_000,
};
