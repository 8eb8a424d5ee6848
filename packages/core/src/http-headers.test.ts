import fc from "fast-check";
import { bearerToken, headerRecord, headersForCaller, headersForRuntime } from "./http-headers.js";

/** Headers that would change the method, path, host or caller address a runtime acts on. */
const TARGET_CHANGERS = [
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-method",
  "x-forwarded-method",
  "method-override",
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
  "x-override-url",
  "x-request-uri",
  "x-original-path",
  "x-envoy-original-path",
  "x-envoy-internal",
  "x-envoy-upstream-rq-timeout-ms",
  "x-envoy-retry-on",
  "x-host",
  "x-original-host",
  "x-forwarded-host",
  "x-real-ip",
  "x-client-ip",
  "true-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
  "x-cluster-client-ip",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
];

/** End-to-end headers clients of the runtimes send, which must keep working. */
const END_TO_END = [
  "content-type",
  "accept",
  "user-agent",
  "openai-beta",
  "openai-organization",
  "x-stainless-os",
  "x-stainless-retry-count",
  "x-request-id",
  "x-trace-id",
  "traceparent",
  "baggage",
  "idempotency-key",
];

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

  it("drops every header that changes the method, path, host or caller address, in any spelling", () => {
    const spelling = (names: string[]) =>
      fc.tuple(...names.map((name) => fc.mixedCase(fc.constant(name)))) as fc.Arbitrary<string[]>;
    fc.assert(
      fc.property(
        spelling(TARGET_CHANGERS),
        spelling(END_TO_END),
        fc.array(fc.nat(), { minLength: 1 }),
        (changers, kept, order) => {
          const pairs = [...changers, ...kept].map((name, index) => ({ name, value: `v${index}` }));
          // Interleaved in some order: position must not matter.
          const shuffled = pairs
            .map((pair, index) => ({ pair, key: order[index % order.length] ?? 0 }))
            .sort((a, b) => a.key - b.key)
            .map(({ pair }) => pair);
          const forwarded = headersForRuntime(shuffled).map(({ name }) => name);
          expect(forwarded.sort()).toEqual([...END_TO_END].sort());
        },
      ),
    );
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
    // Up to the largest access token modelgate accepts, so callers can refuse it by its size.
    expect(bearerToken(`Bearer ${"a".repeat(20 * 1024)}`)).toHaveLength(20 * 1024);
    for (const value of [
      undefined,
      42,
      "",
      "Basic abc",
      "Bearer",
      "Bearer a b",
      "Bearer é",
      `Bearer ${"a".repeat(40 * 1024)}`,
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
