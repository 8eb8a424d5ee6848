// The console's typed client is generated from the control plane's OpenAPI
// document; these fail while the committed files lag behind the API. Fix:
// npm run build && npm run api:generate -w @modelgate/console
import { readFileSync } from "node:fs";
import { describeApi, VERSION } from "@modelgate/control-plane";
// @ts-expect-error: a plain ES module shared with the generator script
import { renderSchemaTypes } from "../scripts/api-types.mjs";

const GENERATED = new URL("../src/api/generated/", import.meta.url);
const committedDocument = JSON.parse(readFileSync(new URL("openapi.json", GENERATED), "utf8"));

describe("the console's API client", () => {
  it("is generated from the control plane's current OpenAPI document", () => {
    expect(committedDocument).toEqual(JSON.parse(JSON.stringify(describeApi(VERSION))));
  });

  it("has the types openapi-typescript renders from that document", async () => {
    const types = readFileSync(new URL("schema.d.ts", GENERATED), "utf8");
    expect(types).toBe(await renderSchemaTypes(committedDocument));
  });
});
