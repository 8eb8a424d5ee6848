// The gRPC contracts between modelgate's processes, loaded at run time from
// the `.proto` files in the repository's `proto/` folder, with TypeScript
// types generated from the same files (`npm run generate`, run on install).
export * from "./credentials.js";
export * from "./load.js";
