import { type FormEvent, useEffect, useState } from "react";
import { BASE, useLocation } from "../router";
import { type SignInOptions, useSession } from "../session";

const ERRORS: Record<string, string> = {
  idp_error: "The identity provider did not sign you in. Try again, or ask your identity provider's administrator.",
  state_mismatch: "That sign-in did not start here (or was used twice). Start again.",
  login_expired: "The sign-in took too long. Start again.",
  token_invalid:
    "The identity provider's token was not accepted (wrong audience, issuer or expiry). Ask the modelgate administrator.",
};

export function SignIn({ expired }: { expired: boolean }) {
  const { refresh } = useSession();
  const { path, query } = useLocation();
  const [options, setOptions] = useState<SignInOptions>();
  const [token, setToken] = useState("");
  const [failure, setFailure] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    void fetch("/console/auth/options")
      .then((answer) => answer.json() as Promise<SignInOptions>)
      .then(setOptions, () => setFailure("The control plane cannot be reached."));
  }, []);

  // Back to the page the person was on; never the sign-in page itself.
  const returnTo = path === "/login" ? "/console/" : `${BASE}${path}`;
  const error = query.get("error");

  const signInWithToken = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setFailure(undefined);
    try {
      const answer = await fetch("/console/auth/token", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: token.trim() }),
      });
      if (answer.status === 204) {
        setToken("");
        if (path === "/login") window.history.replaceState(null, "", "/console/");
        await refresh();
      } else if (answer.status === 401) {
        setFailure("That is not the admin token. It is printed when the control plane starts (npm start).");
      } else {
        setFailure(`The control plane answered ${answer.status}.`);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in">
      <h1>modelgate</h1>
      {expired ? <p className="notice">Your session ended. Sign in again.</p> : null}
      {error ? (
        <p className="problem" role="alert">
          {ERRORS[error] ?? "Sign-in failed. Start again."}
        </p>
      ) : null}
      {options?.oidc ? (
        <a className="button primary" href={`/console/auth/login?returnTo=${encodeURIComponent(returnTo)}`}>
          Sign in with your identity provider
        </a>
      ) : null}
      {options?.adminToken ? (
        <form onSubmit={(event) => void signInWithToken(event)}>
          <label htmlFor="admin-token">Admin token</label>
          <input
            id="admin-token"
            type="password"
            autoComplete="off"
            value={token}
            onChange={(event) => setToken(event.target.value)}
            required
          />
          <button type="submit" disabled={busy || token.trim() === ""}>
            Sign in with the admin token
          </button>
          <p className="muted">The token is printed when the control plane starts (npm start).</p>
        </form>
      ) : null}
      {options && !options.oidc && !options.adminToken ? (
        <p className="problem">
          No sign-in is configured: set MODELGATE_CONSOLE_CLIENT_ID (with OIDC_ISSUER) or an admin token.
        </p>
      ) : null}
      {failure ? (
        <p className="problem" role="alert">
          {failure}
        </p>
      ) : null}
    </main>
  );
}
