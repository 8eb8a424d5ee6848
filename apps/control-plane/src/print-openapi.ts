// Prints the OpenAPI document of /api/v1 to stdout, without a database or a
// listener: `node dist/print-openapi.js > openapi.json`. The console's typed
// client is generated from it (apps/console: npm run api:generate).
import { describeApi } from "./app.js";
import { VERSION } from "./version.js";

process.stdout.write(`${JSON.stringify(describeApi(VERSION), null, 2)}\n`);
