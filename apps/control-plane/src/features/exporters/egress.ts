// Where exporter sockets may go, enforced where they connect. Checking a
// URL when an admin saves it is not enough: a name can resolve to a public
// address then and to 127.0.0.1 a second later (DNS rebinding), and a row
// stored before the policy existed was never checked. So every socket an
// exporter opens resolves its host through `lookup` below, which checks
// every address and hands the socket only checked ones: what was checked is
// what is dialled. An address literal never reaches a lookup function (Node
// dials it directly), so it is checked just before dialling.
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, type LookupFunction } from "node:net";
import { Agent, type Dispatcher } from "undici";
import { type Cidr, parseAllowedCidrs, refusalOf } from "./address-policy.js";
import { DeliveryError, DestinationRefused } from "./delivery-error.js";

interface ResolvedAddress {
  address: string;
  family: number;
}

/** A host name to all its addresses, as `dns.lookup(name, {all: true})` answers. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** The operating system's resolver (getaddrinfo: /etc/hosts, then DNS), as every other socket uses. */
const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, order: "verbatim" });

interface EgressOptions {
  /** MODELGATE_EXPORT_ALLOW_CIDRS: ranges exporters may reach although they are not global unicast. */
  allowCidrs?: string | readonly string[] | undefined;
  /** Tests inject a resolver that answers differently on each call, as a rebinding DNS server does. */
  resolver?: Resolver | undefined;
}

export interface ExportEgress {
  /**
   * Resolves `host` (a name or an address literal, in any spelling the URL
   * standard accepts) and checks every address. Throws DestinationRefused
   * when one is refused, DeliveryError when the host does not resolve.
   */
  check(host: string): Promise<ResolvedAddress[]>;
  /** Checks an address literal now; a name is left to `lookup` at connect time. */
  checkBeforeDial(host: string): Promise<void>;
  /** The `lookup` option for net/tls sockets: `check` at connect time, answering with the checked addresses only. */
  lookup: LookupFunction;
  /** An HTTP client whose every connection resolves through `lookup`. */
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

/**
 * The host as the WHATWG URL parser reads it: `0x7f000001`, `2130706433`,
 * `127.1` and `0177.0.0.1` all become `127.0.0.1`, so the check sees the
 * address that getaddrinfo's inet_aton would dial. Brackets of an IPv6
 * literal are dropped.
 */
export function canonicalHost(host: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) === 6) return bare;
  if (!/^[A-Za-z0-9._-]{1,253}$/.test(bare)) throw new DeliveryError("the exporter's host is not a valid host name");
  try {
    return new URL(`http://${bare}/`).hostname;
  } catch {
    throw new DeliveryError("the exporter's host is not a valid host name or address");
  }
}

export function createExportEgress(options: EgressOptions = {}): ExportEgress {
  const allowed: readonly Cidr[] = parseAllowedCidrs(options.allowCidrs ?? []);
  const resolver = options.resolver ?? systemResolver;

  const verify = (host: string, address: string) => {
    const refusal = refusalOf(address, allowed);
    if (refusal) throw new DestinationRefused(host, address, refusal);
  };

  async function check(host: string): Promise<ResolvedAddress[]> {
    const name = canonicalHost(host);
    const family = isIP(name);
    if (family !== 0) {
      verify(name, name);
      return [{ address: name, family }];
    }
    let addresses: readonly ResolvedAddress[];
    try {
      addresses = await resolver(name);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new DeliveryError(`${name} could not be resolved${typeof code === "string" ? ` (${code})` : ""}`);
    }
    if (addresses.length === 0) throw new DeliveryError(`${name} could not be resolved (no address)`);
    // Every address, not the first: a socket may fall back to any of them.
    for (const { address } of addresses) verify(name, address);
    return addresses.map(({ address, family }) => ({ address, family }));
  }

  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    const wantedFamily =
      lookupOptions.family === 4 || lookupOptions.family === "IPv4"
        ? 4
        : lookupOptions.family === 6 || lookupOptions.family === "IPv6"
          ? 6
          : 0;
    check(hostname).then(
      (addresses) => {
        const usable = addresses.filter((entry) => wantedFamily === 0 || entry.family === wantedFamily);
        const [first] = usable;
        if (!first) {
          callback(new DeliveryError(`${hostname} has no IPv${wantedFamily} address`), "", 0);
        } else if (lookupOptions.all) {
          callback(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: Error) => callback(error, "", 0),
    );
  };

  const dispatcher = new Agent({ connect: { lookup } });

  return {
    check,
    async checkBeforeDial(host) {
      if (isIP(canonicalHost(host)) !== 0) await check(host);
    },
    lookup,
    dispatcher,
    close: () => dispatcher.close(),
  };
}
