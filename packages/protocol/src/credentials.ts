import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import * as grpc from "@grpc/grpc-js";

/** PEM files that turn on TLS for a gRPC listener. */
export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA. */
  clientCaFile?: string | undefined;
}

/** PEM files for a gRPC client; all optional (system roots, no client cert). */
export interface ClientTlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

/**
 * Plaintext gRPC carries tokens and prompts in the clear, so it is only
 * accepted on loopback unless explicitly allowed (e.g. inside a private
 * network that terminates TLS elsewhere). Returns a reason when refused.
 */
export function plaintextRefusal(host: string, allowInsecure: boolean): string | undefined {
  if (allowInsecure || isLoopbackHost(host)) return undefined;
  return `plaintext gRPC to or on ${host} is refused: configure TLS, or allow it explicitly`;
}

export function serverCredentials(tls: ServerTlsFiles | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const clientCa = tls.clientCaFile ? readFileSync(tls.clientCaFile) : null;
  return grpc.ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
    clientCa !== null,
  );
}

export function channelCredentials(tls: ClientTlsFiles | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    tls.caFile ? readFileSync(tls.caFile) : null,
    tls.keyFile ? readFileSync(tls.keyFile) : null,
    tls.certFile ? readFileSync(tls.certFile) : null,
  );
}

/** A gRPC target from a `grpc://` (plaintext) or `grpcs://` (TLS) URL. */
export interface GrpcTarget {
  /** `host:port`, as grpc-js expects it. */
  address: string;
  host: string;
  tls: boolean;
}

export function parseGrpcUrl(value: string): GrpcTarget {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`"${value}" is not a URL (expected grpc://host:port or grpcs://host:port)`);
  }
  if (url.protocol !== "grpc:" && url.protocol !== "grpcs:") {
    throw new Error(`"${value}" must use grpc:// (plaintext) or grpcs:// (TLS)`);
  }
  if (!url.port) throw new Error(`"${value}" must name a port`);
  if (url.pathname.replace(/\/$/, "") || url.search || url.username) {
    throw new Error(`"${value}" must be only a scheme, host and port`);
  }
  return { address: `${url.hostname}:${url.port}`, host: url.hostname, tls: url.protocol === "grpcs:" };
}
