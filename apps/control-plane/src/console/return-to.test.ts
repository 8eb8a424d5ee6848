import { safeReturnTo } from "./return-to.js";

describe("safeReturnTo", () => {
  it("keeps paths under /console with their query and fragment", () => {
    expect(safeReturnTo("/console")).toBe("/console");
    expect(safeReturnTo("/console/approvals/42?tab=votes#top")).toBe("/console/approvals/42?tab=votes#top");
  });

  it("sends everything else to the console's home", () => {
    for (const value of [
      undefined,
      ["/console/a"],
      "",
      "console/",
      "https://evil.example/console/",
      "//evil.example/console/",
      "/\\evil.example/console/",
      "/console/../api/v1/connections",
      "/console/%2e%2e/api",
      "/consolex",
      "/api/v1/connections",
      "/console/\nx",
      `/console/${"a".repeat(3000)}`,
    ]) {
      expect(safeReturnTo(value)).toBe("/console/");
    }
  });
});
