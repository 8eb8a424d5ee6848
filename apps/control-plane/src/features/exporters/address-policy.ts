// Which IP addresses an exporter may connect to. The control plane sits
// inside the network with a view of things the internet does not have
// (cloud metadata at 169.254.169.254, admin ports on loopback, internal
// services): an exporter URL is a way to make it send requests there. Every
// address that is not global unicast is refused unless the operator names
// its range in MODELGATE_EXPORT_ALLOW_CIDRS.
//
// Addresses are compared as bytes, not as text: the same address has many
// spellings (`::ffff:7f00:1`, `::ffff:127.0.0.1`, `0:0:0:0:0:ffff:7f00:1`),
// and an IPv6 address can carry an IPv4 one (mapped, NAT64, 6to4) that the
// packet ends up at.
import { isIP } from "node:net";

export interface Cidr {
  /** As the operator wrote it, for messages. */
  text: string;
  bytes: Uint8Array;
  prefix: number;
}

interface Range {
  cidr: Cidr;
  /** Completes "… is in a … range". */
  kind: string;
}

function parseIPv4(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

/** `text` must already satisfy `isIP(text) === 6`; a zone (`%eth0`) is dropped. */
function parseIPv6(text: string): Uint8Array {
  let value = text.split("%")[0] ?? "";
  const lastColon = value.lastIndexOf(":");
  const tail = value.slice(lastColon + 1);
  if (tail.includes(".")) {
    const [a = 0, b = 0, c = 0, d = 0] = parseIPv4(tail);
    value = `${value.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", rest] = value.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = rest === undefined || rest === "" ? [] : rest.split(":");
  const zeros = rest === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill("0");
  const bytes = new Uint8Array(16);
  [...headGroups, ...zeros, ...tailGroups].forEach((group, index) => {
    const number = Number.parseInt(group, 16);
    bytes[index * 2] = number >> 8;
    bytes[index * 2 + 1] = number & 0xff;
  });
  return bytes;
}

/** The address's bytes (4 or 16), or undefined for anything that is not an IP address literal. */
function addressBytes(address: string): Uint8Array | undefined {
  const family = isIP(address);
  if (family === 4) return parseIPv4(address);
  if (family === 6) return parseIPv6(address);
  return undefined;
}

function formatBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) {
    groups.push((((bytes[index] ?? 0) << 8) | (bytes[index + 1] ?? 0)).toString(16));
  }
  // The URL parser writes IPv6 in its shortest form (RFC 5952).
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

function contains(cidr: Cidr, bytes: Uint8Array): boolean {
  if (cidr.bytes.length !== bytes.length) return false;
  for (let bit = 0; bit < cidr.prefix; bit += 8) {
    const take = Math.min(8, cidr.prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((cidr.bytes[bit / 8] ?? 0) & mask) !== ((bytes[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * `address/prefix`, the address written plainly (dotted quad or IPv6) with
 * no bits set past the prefix: `10.0.0.5/8` is refused rather than read as
 * `10.0.0.0/8`, since its writer may have meant either.
 */
export function parseCidr(text: string): Cidr {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  const bytes = match ? addressBytes(match[1] ?? "") : undefined;
  if (!match || !bytes) {
    throw new Error(`${text} is not a CIDR range (an IP address, "/" and a prefix length, e.g. 10.20.0.0/16)`);
  }
  const prefix = Number(match[2]);
  if (prefix > bytes.length * 8) throw new Error(`${text}: the prefix length is at most ${bytes.length * 8}`);
  const network = bytes.map((byte, index) => {
    const bits = Math.max(0, Math.min(8, prefix - index * 8));
    return byte & ((0xff << (8 - bits)) & 0xff);
  });
  if (network.some((byte, index) => byte !== bytes[index])) {
    throw new Error(`${text} has bits set past its prefix; did you mean ${formatBytes(network)}/${prefix}?`);
  }
  return { text: text.trim(), bytes, prefix };
}

/** At most this many allowed ranges: a list longer than that is a mistake, not a policy. */
const MAX_ALLOWED_CIDRS = 64;

/** MODELGATE_EXPORT_ALLOW_CIDRS: comma-separated CIDR ranges; empty allows none. Throws on the first bad one. */
export function parseAllowedCidrs(value: string | readonly string[]): Cidr[] {
  const items = (typeof value === "string" ? value.split(",") : value).map((item) => item.trim()).filter(Boolean);
  if (items.length > MAX_ALLOWED_CIDRS) throw new Error(`at most ${MAX_ALLOWED_CIDRS} ranges`);
  return items.map(parseCidr);
}

const range = (text: string, kind: string): Range => ({ cidr: parseCidr(text), kind });

/** IANA's special-purpose IPv4 registry, less the globally reachable entries, plus multicast and the reserved block. */
const IPV4_REFUSED: readonly Range[] = [
  range("0.0.0.0/8", 'unspecified ("this network")'),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "shared (carrier-grade NAT)"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local (cloud metadata)"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "IETF protocol assignment"),
  range("192.0.2.0/24", "documentation"),
  range("192.88.99.0/24", "6to4 relay anycast"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("240.0.0.0/4", "reserved (and broadcast)"),
];

/** Inside global unicast (2000::/3), the blocks that are not globally reachable. Outside it, everything is refused. */
const IPV6_REFUSED: readonly Range[] = [
  range("2001::/23", "IETF protocol assignment (Teredo and others)"),
  range("2001:db8::/32", "documentation"),
  range("3fff::/20", "documentation"),
];
const IPV6_GLOBAL_UNICAST = parseCidr("2000::/3");

/**
 * IPv6 forms whose packets end at an IPv4 address: IPv4-mapped (a dual-stack
 * socket connects to the IPv4 address), NAT64's well-known prefix, 6to4.
 * The IPv4 address decides.
 */
const EMBEDDING: readonly { cidr: Cidr; offset: number; name: string }[] = [
  { cidr: parseCidr("::ffff:0:0/96"), offset: 12, name: "IPv4-mapped" },
  { cidr: parseCidr("64:ff9b::/96"), offset: 12, name: "NAT64" },
  { cidr: parseCidr("2002::/16"), offset: 2, name: "6to4" },
];

const IPV6_NAMED: readonly Range[] = [
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  range("fc00::/7", "unique local (private)"),
  range("fe80::/10", "link-local"),
  range("ff00::/8", "multicast"),
];

export interface Refusal {
  /** "loopback", "private", …: what "is in a … range" says. */
  kind: string;
  /** The refused range it falls in. */
  range: string;
  /** For an IPv6 address carrying an IPv4 one, which decided: the form and that IPv4 address. */
  embedded?: { form: string; address: string } | undefined;
}

/**
 * Why an exporter may not connect to `address`, or undefined when it may:
 * global unicast, or inside one of `allowed`. A string that is not an IP
 * address is refused: this is only ever asked about resolved addresses.
 */
export function refusalOf(address: string, allowed: readonly Cidr[]): Refusal | undefined {
  const bytes = addressBytes(address);
  if (!bytes) return { kind: "unparsable", range: "not an IP address" };
  return refusalOfBytes(bytes, allowed);
}

function refusalOfBytes(bytes: Uint8Array, allowed: readonly Cidr[]): Refusal | undefined {
  if (allowed.some((cidr) => contains(cidr, bytes))) return undefined;
  if (bytes.length === 4) {
    const hit = IPV4_REFUSED.find((candidate) => contains(candidate.cidr, bytes));
    return hit ? { kind: hit.kind, range: hit.cidr.text } : undefined;
  }
  for (const embedding of EMBEDDING) {
    if (!contains(embedding.cidr, bytes)) continue;
    const inner = bytes.slice(embedding.offset, embedding.offset + 4);
    const refusal = refusalOfBytes(inner, allowed);
    return refusal && { ...refusal, embedded: { form: embedding.name, address: formatBytes(inner) } };
  }
  const hit = [...IPV6_NAMED, ...IPV6_REFUSED].find((candidate) => contains(candidate.cidr, bytes));
  if (hit) return { kind: hit.kind, range: hit.cidr.text };
  if (!contains(IPV6_GLOBAL_UNICAST, bytes)) return { kind: "reserved", range: "outside 2000::/3" };
  return undefined;
}
