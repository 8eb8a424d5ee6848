import { secretsEqual } from "@modelgate/core";
import { looksLikeJwt, type OidcVerifier, TokenError } from "@modelgate/identity";
import { ApiError, unauthenticated } from "./errors.js";

/** What a caller may do. Identity-provider groups map onto these. */
export type Role = "admin" | "auditor" | "approver";

export interface Principal {
  /** Stable identifier written to the admin audit log: the OIDC user claim, or `bootstrap-admin`. */
  id: string;
  kind: "admin_token" | "oidc";
  roles: ReadonlySet<Role>;
  /** A person's identity-provider groups (approvals are visible and decidable by group); empty for the admin token. */
  groups: readonly string[];
  /** A person's email, when the token carries a verified one. */
  email?: string | undefined;
  /** The issuer of a person's token: with `id`, who they are across identity providers. */
  issuer?: string | undefined;
}

/** Turns an Authorization header into a principal, or throws `unauthenticated`. */
export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

/** Which identity-provider groups hold which role (MODELGATE_ADMIN_GROUPS, …). */
export interface RoleGroups {
  admin: readonly string[];
  auditor: readonly string[];
  approver: readonly string[];
}

/** Longest credential we bother to compare; anything longer is garbage. */
const MAX_CREDENTIAL_LENGTH = 8192;

function parseBearer(authorization: string | undefined): string {
  if (!authorization) throw unauthenticated("send an Authorization: Bearer <token> header");
  if (authorization.length > MAX_CREDENTIAL_LENGTH) throw unauthenticated("the Authorization header is too long");
  const match = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(authorization);
  if (!match?.[1]) throw unauthenticated("the Authorization header must be of the form Bearer <token>");
  return match[1];
}

function rolesOf(groups: readonly string[], roleGroups: RoleGroups): Set<Role> {
  const member = new Set(groups);
  const roles = new Set<Role>();
  for (const role of ["admin", "auditor", "approver"] as const) {
    if (roleGroups[role].some((group) => member.has(group))) roles.add(role);
  }
  return roles;
}

export interface AuthenticatorOptions {
  /** The bootstrap admin token (MODELGATE_ADMIN_TOKEN), for first setup and automation. */
  adminToken?: string | undefined;
  /** People with OIDC access tokens, their roles taken from their groups. */
  oidc?: { verifier: OidcVerifier; roleGroups: RoleGroups } | undefined;
}

/** Who the bootstrap admin token is: the API's, and the console's after admin-token sign-in. */
export function bootstrapAdmin(): Principal {
  return { id: "bootstrap-admin", kind: "admin_token", roles: new Set(["admin"]), groups: [] };
}

/**
 * Accepts the bootstrap admin token (compared in constant time) and, when
 * configured, OIDC access tokens. A person whose groups hold no role is
 * authenticated but may call nothing: every route answers 403.
 */
export function createAuthenticator({ adminToken, oidc }: AuthenticatorOptions): Authenticator {
  const bootstrap = bootstrapAdmin();
  return {
    async authenticate(authorization) {
      const presented = parseBearer(authorization);
      // The bootstrap token first (constant time): an admin token that
      // happens to look like a JWT must still work with OIDC on.
      if (adminToken !== undefined && secretsEqual(presented, adminToken)) return bootstrap;
      if (oidc && looksLikeJwt(presented)) {
        try {
          const token = await oidc.verifier.verify(presented);
          return {
            id: token.subject,
            kind: "oidc",
            roles: rolesOf(token.groups, oidc.roleGroups),
            groups: token.groups,
            email: token.email,
            issuer: token.issuer,
          };
        } catch (error) {
          if (!(error instanceof TokenError)) throw error;
          if (error.status === 503) throw new ApiError("unavailable", "the identity provider cannot be reached");
          throw unauthenticated(`the access token is not valid (${error.code})`);
        }
      }
      throw unauthenticated("the bearer token is not valid");
    },
  };
}
