#!/usr/bin/env node
// Regenerates the console's typed API client from the control plane's
// OpenAPI document: src/api/generated/openapi.json (the document) and
// src/api/generated/schema.d.ts (its types, by openapi-typescript). Run it after
// changing a route: `npm run build && npm run api:generate -w @modelgate/console`.
// Tests fail while either file lags behind the API (control plane:
// test/console-api-document.test.ts; console: test/api-types.test.ts).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { renderSchemaTypes } from "./api-types.mjs";

const here = import.meta.dirname;
const printer = path.resolve(here, "../../control-plane/dist/print-openapi.js");
const document = execFileSync(process.execPath, [printer], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
writeFileSync(path.resolve(here, "../src/api/generated/openapi.json"), document);
writeFileSync(path.resolve(here, "../src/api/generated/schema.d.ts"), await renderSchemaTypes(JSON.parse(document)));
