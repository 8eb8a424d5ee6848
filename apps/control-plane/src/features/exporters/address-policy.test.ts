import { BlockList } from "node:net";
import fc from "fast-check";
import { parseAllowedCidrs, parseCidr, refusalOf } from "./address-policy.js";
import { canonicalHost } from "./egress.js";

const NONE = parseAllowedCidrs("");

/** What the check sees for a host written in a URL or a syslog target. */
const verdict = (host: string, allowed = NONE) => refusalOf(canonicalHost(host), allowed)?.kind;

/** Every spelling of one IPv4 address that the URL standard or an IPv6 wrapper accepts. */
function spellings([a, b, c, d]: readonly [number, number, number, number]): string[] {
  const value = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
  const hex = (n: number) => n.toString(16);
  return [
    `${a}.${b}.${c}.${d}`,
    String(value),
    `0x${hex(value)}`,
    `0x${hex(value).toUpperCase()}`,
    `0${value.toString(8)}`,
    [a, b, c, d].map((part) => `0x${hex(part)}`).join("."),
    [a, b, c, d].map((part) => `0${part.toString(8)}`).join("."),
    `${a}.${b}.${(c << 8) + d}`,
    `${a}.${(b << 16) + (c << 8) + d}`,
    `${a}.${b}.${c}.${d}.`,
    `[::ffff:${a}.${b}.${c}.${d}]`,
    `[::ffff:${hex((a << 8) + b)}:${hex((c << 8) + d)}]`,
    `[0:0:0:0:0:ffff:${hex((a << 8) + b)}:${hex((c << 8) + d)}]`,
    `[::FFFF:${hex((a << 8) + b).toUpperCase()}:${hex((c << 8) + d)}]`,
    `[64:ff9b::${a}.${b}.${c}.${d}]`,
    `[64:ff9b::${hex((a << 8) + b)}:${hex((c << 8) + d)}]`,
    `[2002:${hex((a << 8) + b)}:${hex((c << 8) + d)}::1]`,
  ];
}

/** The refused IPv4 ranges as published (IANA special-purpose registry, multicast, reserved), built independently. */
const PUBLISHED_V4 = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  PUBLISHED_V4.addSubnet(network, prefix, "ipv4");
}

const octets = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
/** Addresses biased towards the edges of the refused ranges, where off-by-one masks hide. */
const edgy = fc.oneof(
  octets,
  fc.tuple(
    fc.constantFrom(0, 10, 100, 126, 127, 128, 169, 172, 191, 192, 198, 203, 223, 224, 239, 240, 255),
    fc.constantFrom(0, 1, 15, 16, 17, 31, 32, 51, 63, 64, 88, 127, 128, 168, 254, 255),
    fc.nat(255),
    fc.nat(255),
  ),
);

describe("exporter address policy", () => {
  it.each([
    "127.0.0.1",
    "127.255.255.254",
    "0x7f000001",
    "0X7F000001",
    "2130706433",
    "127.1",
    "127.0.1",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "017700000001",
    "127.0.0.1.",
    "[::1]",
    "::1",
    "[0:0:0:0:0:0:0:1]",
    "[0000:0000:0000:0000:0000:0000:0000:0001]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
  ])("refuses loopback written as %s", (host) => {
    expect(verdict(host)).toBe("loopback");
  });

  it.each([
    ["169.254.169.254", "link-local (cloud metadata)"],
    ["0xa9fea9fe", "link-local (cloud metadata)"],
    ["2852039166", "link-local (cloud metadata)"],
    ["[::ffff:169.254.169.254]", "link-local (cloud metadata)"],
    ["[64:ff9b::a9fe:a9fe]", "link-local (cloud metadata)"],
    ["[2002:a9fe:a9fe::1]", "link-local (cloud metadata)"],
    ["[fd00:ec2::254]", "unique local (private)"],
    ["[fe80::1]", "link-local"],
    ["[febf::1]", "link-local"],
    ["10.0.0.5", "private"],
    ["10.255.255.255", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["[::ffff:10.0.0.1]", "private"],
    ["[fc00::1]", "unique local (private)"],
    ["[fdff:ffff::1]", "unique local (private)"],
    ["100.64.0.1", "shared (carrier-grade NAT)"],
    ["100.127.255.255", "shared (carrier-grade NAT)"],
    ["0.0.0.0", 'unspecified ("this network")'],
    ["0", 'unspecified ("this network")'],
    ["0.1.2.3", 'unspecified ("this network")'],
    ["[::]", "unspecified"],
    ["[::ffff:0.0.0.0]", 'unspecified ("this network")'],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["[ff02::1]", "multicast"],
    ["[ff05::1:3]", "multicast"],
    ["255.255.255.255", "reserved (and broadcast)"],
    ["240.0.0.1", "reserved (and broadcast)"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["[2001:db8::1]", "documentation"],
    ["[3fff::1]", "documentation"],
    ["192.0.0.170", "IETF protocol assignment"],
    ["192.88.99.1", "6to4 relay anycast"],
    ["[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "IETF protocol assignment (Teredo and others)"],
    ["[64:ff9b:1::a00:1]", "reserved"],
    ["[::127.0.0.1]", "reserved"],
    ["[100::1]", "reserved"],
    ["[fec0::1]", "reserved"],
    ["[::ffff:0:a00:1]", "reserved"],
  ])("refuses %s as %s", (host, kind) => {
    expect(verdict(host)).toBe(kind);
  });

  it.each([
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "[2606:4700:4700::1111]",
    "[2a00:1450:4001:82b::200e]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
    "[2002:808:808::1]",
  ])("allows the global unicast address %s", (host) => {
    expect(verdict(host)).toBeUndefined();
  });

  it("decides every spelling of an IPv4 address as its dotted form, and that as the published ranges do", () => {
    fc.assert(
      fc.property(edgy, (parts) => {
        const dotted = parts.join(".");
        const expected = PUBLISHED_V4.check(dotted, "ipv4");
        for (const spelling of spellings(parts)) {
          expect([spelling, verdict(spelling) !== undefined]).toEqual([spelling, expected]);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses every IPv6 address outside global unicast, and the non-global blocks inside it", () => {
    const group = fc.nat(0xffff).map((n) => n.toString(16));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const address = groups.join(":");
        const first = Number.parseInt(groups[0] as string, 16);
        const embedded = address.startsWith("2002:");
        fc.pre(!embedded);
        const outside = first < 0x2000 || first > 0x3fff;
        const teredoOrDoc = first === 0x2001 && Number.parseInt(groups[1] as string, 16) < 0x200;
        const doc =
          (first === 0x2001 && groups[1] === "db8") ||
          (first === 0x3fff && Number.parseInt(groups[1] as string, 16) < 0x1000);
        expect(verdict(`[${address}]`) !== undefined).toBe(outside || teredoOrDoc || doc);
      }),
      { numRuns: 2000 },
    );
  });

  it("lets named ranges through, and only those", () => {
    const loopback = parseAllowedCidrs("127.0.0.0/8");
    for (const host of ["127.0.0.1", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]"]) {
      expect(verdict(host, loopback)).toBeUndefined();
    }
    expect(verdict("[::1]", loopback)).toBe("loopback");
    expect(verdict("10.0.0.1", loopback)).toBe("private");
    const some = parseAllowedCidrs(" 10.1.0.0/16 , fd00:1::/32,::1/128");
    expect(verdict("10.1.2.3", some)).toBeUndefined();
    expect(verdict("10.2.0.1", some)).toBe("private");
    expect(verdict("[fd00:1::5]", some)).toBeUndefined();
    expect(verdict("[fd00:2::5]", some)).toBe("unique local (private)");
    expect(verdict("[::1]", some)).toBeUndefined();
    expect(verdict("127.0.0.1", some)).toBe("loopback");
  });

  it.each([
    ["10.0.0.5/8", "10.0.0.5/8 has bits set past its prefix; did you mean 10.0.0.0/8?"],
    ["fd00::1/8", "fd00::1/8 has bits set past its prefix; did you mean fd00::/8?"],
    ["10.0.0.0/33", "10.0.0.0/33: the prefix length is at most 32"],
    ["::/129", "::/129: the prefix length is at most 128"],
    ["10.0.0.0", "is not a CIDR range"],
    ["127.1/8", "is not a CIDR range"],
    ["0x7f000000/8", "is not a CIDR range"],
    ["localhost/8", "is not a CIDR range"],
    ["10.0.0.0/-1", "is not a CIDR range"],
  ])("refuses the allowed range %s with a clear message", (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
  });

  it("refuses more than 64 allowed ranges", () => {
    const many = Array.from({ length: 65 }, (_, index) => `10.${index}.0.0/16`).join(",");
    expect(() => parseAllowedCidrs(many)).toThrow("at most 64 ranges");
  });
});
