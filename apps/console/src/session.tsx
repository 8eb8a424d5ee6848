// Who is signed in, from the control plane's session endpoint. The session
// itself is an HttpOnly cookie the page cannot read; this holds what the
// page may know: the principal, its roles and the CSRF token.
import { createContext, type ReactNode, useCallback, useContext, useEffect, useState } from "react";
import { setCsrfToken, whenUnauthenticated } from "./api/client";

export type Role = "admin" | "auditor" | "approver";

export interface ConsoleSession {
  principal: { id: string; kind: "admin_token" | "oidc"; roles: Role[]; groups: string[]; email?: string };
  csrfToken: string;
  expiresAt: string;
}

export interface SignInOptions {
  oidc: boolean;
  adminToken: boolean;
}

type State =
  | { status: "loading" }
  | { status: "signed-out"; expired: boolean }
  | { status: "signed-in"; session: ConsoleSession };

interface SessionContextValue {
  state: State;
  refresh(): Promise<void>;
  signOut(): Promise<void>;
}

const SessionContext = createContext<SessionContextValue | undefined>(undefined);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<State>({ status: "loading" });

  const refresh = useCallback(async () => {
    const answer = await fetch("/console/auth/session", { credentials: "same-origin" });
    const body = answer.ok
      ? ((await answer.json()) as ({ signedIn: true } & ConsoleSession) | { signedIn: false })
      : undefined;
    if (body?.signedIn) {
      const session: ConsoleSession = body;
      setCsrfToken(session.csrfToken);
      setState({ status: "signed-in", session });
    } else {
      setCsrfToken(undefined);
      setState({ status: "signed-out", expired: false });
    }
  }, []);

  const signOut = useCallback(async () => {
    if (state.status === "signed-in") {
      await fetch("/console/auth/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-csrf-token": state.session.csrfToken },
      });
    }
    setCsrfToken(undefined);
    setState({ status: "signed-out", expired: false });
  }, [state]);

  useEffect(() => {
    void refresh();
    // Any API call answering 401 means the session ended under the page.
    whenUnauthenticated(() => {
      setCsrfToken(undefined);
      setState({ status: "signed-out", expired: true });
    });
  }, [refresh]);

  // End the session in the page when it ends on the server, so a person
  // comes back to a sign-in page rather than to a screen of errors.
  useEffect(() => {
    if (state.status !== "signed-in") return;
    const left = Date.parse(state.session.expiresAt) - Date.now();
    const timer = setTimeout(() => setState({ status: "signed-out", expired: true }), Math.max(0, left));
    return () => clearTimeout(timer);
  }, [state]);

  return <SessionContext.Provider value={{ state, refresh, signOut }}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionContextValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error("useSession outside SessionProvider");
  return value;
}

/** The signed-in session; only for components rendered behind the sign-in. */
export function useSignedIn(): ConsoleSession {
  const { state } = useSession();
  if (state.status !== "signed-in") throw new Error("useSignedIn outside a signed-in view");
  return state.session;
}

export function hasAnyRole(session: ConsoleSession, roles: readonly Role[]): boolean {
  return roles.some((role) => session.principal.roles.includes(role));
}
