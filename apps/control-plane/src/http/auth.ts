import { secretsEqual } from "@modelgate/core";
import { unauthenticated } from "./errors.js";

/** What a caller may do. Later identity providers map their groups onto these. */
export type Role = "admin" | "auditor" | "approver";

export interface Principal {
  /** Stable identifier written to the admin audit log. */
  id: string;
  kind: "admin_token" | "oidc";
  roles: ReadonlySet<Role>;
}

/** Turns an Authorization header into a principal, or throws `unauthenticated`. */
export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

/** Longest credential we bother to compare; anything longer is garbage. */
const MAX_CREDENTIAL_LENGTH = 8192;

export function parseBearer(authorization: string | undefined): string {
  if (!authorization) throw unauthenticated("send an Authorization: Bearer <token> header");
  if (authorization.length > MAX_CREDENTIAL_LENGTH) throw unauthenticated("the Authorization header is too long");
  const match = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(authorization);
  if (!match?.[1]) throw unauthenticated("the Authorization header must be of the form Bearer <token>");
  return match[1];
}

/**
 * The bootstrap admin token from MODELGATE_ADMIN_TOKEN: for first setup and
 * automation. Compared in constant time.
 */
export function adminTokenAuthenticator(adminToken: string): Authenticator {
  const principal: Principal = { id: "bootstrap-admin", kind: "admin_token", roles: new Set(["admin"]) };
  return {
    async authenticate(authorization) {
      const presented = parseBearer(authorization);
      if (!secretsEqual(presented, adminToken)) throw unauthenticated("the bearer token is not valid");
      return principal;
    },
  };
}
