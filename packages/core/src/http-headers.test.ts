import { bearerToken, headerRecord, headersForCaller, headersForRuntime } from "./http-headers.js";

describe("headersForRuntime", () => {
  it("drops the caller's credentials, modelgate headers, hop-by-hop and connection-named headers", () => {
    const forwarded = headersForRuntime({
      Authorization: "Bearer mg_secret",
      "Proxy-Authorization": "Basic x",
      Cookie: "session=1",
      "X-Api-Key": "k",
      "api-key": "k",
      "x-modelgate-session": "forged",
      Connection: "keep-alive, X-Custom-Hop",
      "x-custom-hop": "1",
      "Keep-Alive": "timeout=5",
      "Transfer-Encoding": "chunked",
      TE: "trailers",
      Upgrade: "h2c",
      Host: "gateway.example",
      "Content-Length": "12",
      "Accept-Encoding": "gzip",
      "X-Forwarded-For": "10.0.0.1",
      "Content-Type": "application/json",
      Accept: ["text/event-stream", "application/json"],
      "OpenAI-Beta": "assistants=v2",
    });
    expect(forwarded).toEqual([
      { name: "content-type", value: "application/json" },
      { name: "accept", value: "text/event-stream" },
      { name: "accept", value: "application/json" },
      { name: "openai-beta", value: "assistants=v2" },
    ]);
  });

  it("drops identity headers that proxies in front of the gateway add", () => {
    expect(
      headersForRuntime({
        "x-forwarded-access-token": "eyJ...",
        "x-forwarded-user": "alice",
        "x-forwarded-email": "alice@example.com",
        "x-forwarded-prefix": "/llm",
        "x-auth-request-access-token": "eyJ...",
        "x-amzn-oidc-accesstoken": "eyJ...",
        "cf-access-jwt-assertion": "eyJ...",
        "x-goog-iap-jwt-assertion": "eyJ...",
        "x-ms-client-principal": "e30=",
        "x-ms-token-aad-access-token": "eyJ...",
        "x-trace-id": "kept",
      }),
    ).toEqual([{ name: "x-trace-id", value: "kept" }]);
  });

  it("accepts header pairs as well as Node's header objects", () => {
    expect(
      headersForRuntime([
        { name: "Cookie", value: "a" },
        { name: "X-Trace", value: "1" },
      ]),
    ).toEqual([{ name: "x-trace", value: "1" }]);
  });
});

describe("headersForCaller", () => {
  it("keeps the runtime's content type and drops framing, cookies and modelgate headers", () => {
    expect(
      headersForCaller({
        "content-type": "text/event-stream",
        "content-length": "10",
        "transfer-encoding": "chunked",
        "set-cookie": ["a=1"],
        "x-modelgate-session": "spoofed",
        "x-request-id": "runtime-1",
      }),
    ).toEqual([
      { name: "content-type", value: "text/event-stream" },
      { name: "x-request-id", value: "runtime-1" },
    ]);
  });
});

describe("bearerToken", () => {
  it("reads the token of a Bearer header and nothing else", () => {
    expect(bearerToken("Bearer mg_abc")).toBe("mg_abc");
    expect(bearerToken("bearer  mg_abc ")).toBe("mg_abc");
    for (const value of [
      undefined,
      42,
      "",
      "Basic abc",
      "Bearer",
      "Bearer a b",
      "Bearer é",
      `Bearer ${"a".repeat(9000)}`,
    ]) {
      expect(bearerToken(value)).toBeUndefined();
    }
  });
});

describe("headerRecord", () => {
  it("turns repeated names into arrays", () => {
    expect(
      headerRecord([
        { name: "accept", value: "a" },
        { name: "x", value: "1" },
        { name: "accept", value: "b" },
      ]),
    ).toEqual({ accept: ["a", "b"], x: "1" });
  });
});
