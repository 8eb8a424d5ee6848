import type { Role } from "../session";

/** Shown instead of a page the person's roles do not open (the API refuses its calls too). */
export function NotAllowed({ roles }: { roles: readonly Role[] }) {
  return (
    <section className="not-allowed" data-testid="not-allowed">
      <h1>You lack the role for this page</h1>
      <p>
        It needs the <strong>{roles.join(" or ")}</strong> role. Roles come from your identity-provider groups (
        <code>MODELGATE_ADMIN_GROUPS</code>, <code>MODELGATE_AUDITOR_GROUPS</code>,{" "}
        <code>MODELGATE_APPROVER_GROUPS</code>
        ): ask a modelgate administrator to add you to one.
      </p>
    </section>
  );
}
