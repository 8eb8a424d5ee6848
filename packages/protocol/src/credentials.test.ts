import { isLoopbackHost, parseGrpcUrl, plaintextRefusal } from "./credentials.js";

describe("parseGrpcUrl", () => {
  it("reads plaintext and TLS targets", () => {
    expect(parseGrpcUrl("grpc://127.0.0.1:8443")).toEqual({ address: "127.0.0.1:8443", host: "127.0.0.1", tls: false });
    expect(parseGrpcUrl("grpcs://gw.example.com:443")).toEqual({
      address: "gw.example.com:443",
      host: "gw.example.com",
      tls: true,
    });
    expect(parseGrpcUrl("grpc://[::1]:8443")).toMatchObject({ address: "[::1]:8443", host: "[::1]" });
  });

  it.each([
    ["gw:8443", /is not a URL|must use grpc/],
    ["https://gw:8443", /must use grpc/],
    ["grpc://gw", /must name a port/],
    ["grpc://gw:8443/path", /only a scheme, host and port/],
    ["grpc://user@gw:8443", /only a scheme, host and port/],
  ])("refuses %j", (value, message) => {
    expect(() => parseGrpcUrl(value)).toThrow(message);
  });
});

describe("plaintext policy", () => {
  it("knows loopback hosts", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ["0.0.0.0", "10.0.0.1", "gw.example", "::", "128.0.0.1"])
      expect(isLoopbackHost(host)).toBe(false);
  });

  it("refuses plaintext off loopback unless explicitly allowed", () => {
    expect(plaintextRefusal("127.0.0.1", false)).toBeUndefined();
    expect(plaintextRefusal("10.0.0.5", false)).toMatch(/plaintext gRPC/);
    expect(plaintextRefusal("10.0.0.5", true)).toBeUndefined();
  });
});
