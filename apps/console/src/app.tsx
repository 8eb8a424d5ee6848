import type { ReactNode } from "react";
import { AdminAuditLog } from "./pages/admin-audit-log";
import { Alerts } from "./pages/alerts";
import { ApiKeys } from "./pages/api-keys";
import { ApprovalDetail } from "./pages/approval-detail";
import { Approvals } from "./pages/approvals";
import { Connections } from "./pages/connections";
import { NotAllowed } from "./pages/not-allowed";
import { Overview } from "./pages/overview";
import { Policies } from "./pages/policies";
import { PolicyEditor } from "./pages/policy-editor";
import { PolicyEvaluate } from "./pages/policy-evaluate";
import { SessionDetail } from "./pages/session-detail";
import { Sessions } from "./pages/sessions";
import { SignIn } from "./pages/sign-in";
import { Link, match, useLocation } from "./router";
import { type ConsoleSession, hasAnyRole, type Role, useSession } from "./session";

interface PageRoute {
  pattern: string;
  /** Any one of these roles opens the page; the API enforces the same on every call it makes. */
  roles: readonly Role[];
  /** Open to every signed-in person whatever their roles (approvals: the API decides per approval). */
  anyPerson?: boolean;
  render(params: Record<string, string>): ReactNode;
}

const READERS: readonly Role[] = ["admin", "auditor"];
const ADMIN: readonly Role[] = ["admin"];
const EVERYONE: readonly Role[] = ["admin", "auditor", "approver"];

const ROUTES: PageRoute[] = [
  { pattern: "/", roles: READERS, render: () => <Overview /> },
  { pattern: "/approvals", roles: EVERYONE, anyPerson: true, render: () => <Approvals /> },
  { pattern: "/approvals/:id", roles: EVERYONE, anyPerson: true, render: ({ id }) => <ApprovalDetail id={id ?? ""} /> },
  { pattern: "/sessions", roles: READERS, render: () => <Sessions /> },
  { pattern: "/sessions/:id", roles: READERS, render: ({ id }) => <SessionDetail id={id ?? ""} /> },
  { pattern: "/connections", roles: ADMIN, render: () => <Connections /> },
  { pattern: "/policies", roles: ADMIN, render: () => <Policies /> },
  { pattern: "/policies/new", roles: ADMIN, render: () => <PolicyEditor /> },
  { pattern: "/policies/evaluate", roles: ADMIN, render: () => <PolicyEvaluate /> },
  { pattern: "/policies/:id", roles: ADMIN, render: ({ id }) => <PolicyEditor id={id} /> },
  { pattern: "/api-keys", roles: ADMIN, render: () => <ApiKeys /> },
  { pattern: "/alerts", roles: READERS, render: () => <Alerts /> },
  { pattern: "/audit-log", roles: READERS, render: () => <AdminAuditLog /> },
];

const NAV: { to: string; label: string; roles: readonly Role[]; anyPerson?: boolean }[] = [
  { to: "/", label: "Overview", roles: READERS },
  { to: "/approvals", label: "Approvals", roles: EVERYONE, anyPerson: true },
  { to: "/sessions", label: "Sessions", roles: READERS },
  { to: "/connections", label: "Connections", roles: ADMIN },
  { to: "/policies", label: "Policies", roles: ADMIN },
  { to: "/api-keys", label: "API keys", roles: ADMIN },
  { to: "/alerts", label: "Exporters & alerts", roles: READERS },
  { to: "/audit-log", label: "Admin audit log", roles: READERS },
];

const opens = (session: ConsoleSession, page: { roles: readonly Role[]; anyPerson?: boolean }) =>
  hasAnyRole(session, page.roles) || (page.anyPerson === true && session.principal.kind === "oidc");

export function App() {
  const { state } = useSession();
  if (state.status === "loading") return <p className="muted boot">Loading…</p>;
  if (state.status === "signed-out") return <SignIn expired={state.expired} />;
  return <SignedIn session={state.session} />;
}

function SignedIn({ session }: { session: ConsoleSession }) {
  const { signOut } = useSession();
  const { path } = useLocation();
  const visible = NAV.filter((item) => opens(session, item));
  // A person without the overview's roles lands on the first page they may open.
  // The sign-in page's own path (where the IdP's failures land) means home once signed in.
  const requested = path === "/login" ? "/" : path;
  const landing = requested === "/" && !opens(session, ROUTES[0] as PageRoute) ? visible[0]?.to : undefined;
  const current = landing ?? requested;

  let page: ReactNode = <NotFound />;
  for (const route of ROUTES) {
    const params = match(route.pattern, current);
    if (!params) continue;
    page = opens(session, route) ? route.render(params) : <NotAllowed roles={route.roles} />;
    break;
  }
  if (visible.length === 0) page = <NotAllowed roles={EVERYONE} />;

  const who = session.principal.email ?? session.principal.id;
  return (
    <div className="shell">
      <header className="top">
        <Link to="/" className="brand">
          modelgate
        </Link>
        <span className="who" title={`roles: ${session.principal.roles.join(", ") || "none"}`}>
          {who}
          <span className="muted"> · {session.principal.roles.join(", ") || "no role"}</span>
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <nav aria-label="Pages">
        <ul>
          {visible.map((item) => (
            <li key={item.to}>
              <Link
                to={item.to}
                aria-current={(item.to === "/" ? current === "/" : current.startsWith(item.to)) ? "page" : undefined}
              >
                {item.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main>{page}</main>
    </div>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no such page. <Link to="/">Go to the overview</Link>.
      </p>
    </section>
  );
}
