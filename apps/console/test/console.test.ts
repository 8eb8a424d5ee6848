// The console in a real browser against real parts (test/stack.ts): a person
// signs in at the identity provider, watches a request land, approves a
// held prompt, replays a session, manages keys and policies; roles the API
// enforces decide what each person sees.
import OpenAI from "openai";
import type { Browser, Page } from "playwright-core";
import { launchBrowser, openPage, screenshot, type WatchedPage } from "./browser.js";
import { type ConsoleStack, PEOPLE, startConsoleStack } from "./stack.js";

/** A browser drives each step; the default 20 s is for API-level tests. */
const STEP_MS = 60_000;

describe("the web console", () => {
  let stack: ConsoleStack;
  let browser: Browser;
  let admin: WatchedPage;
  let caller: OpenAI;
  /** What the caller's streamed request received, to compare with the replay. */
  let streamedAnswer = "";

  beforeAll(async () => {
    stack = await startConsoleStack();
    browser = await launchBrowser();
    caller = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: stack.callerKey, maxRetries: 0 });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  /** Signs a person in through the identity provider's own sign-in page. */
  async function signInAs(person: keyof typeof PEOPLE, viewport?: { width: number; height: number }) {
    const watched = await openPage(browser, viewport);
    const { page } = watched;
    await page.goto(stack.consoleUrl);
    await page.getByRole("link", { name: "Sign in with your identity provider" }).click();
    await page.waitForURL((url) => url.origin === stack.idp.issuer);
    await page.getByLabel("Username").fill(PEOPLE[person].subject);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL((url) => url.pathname.startsWith("/console/") && url.origin === stack.controlPlaneUrl);
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    return watched;
  }

  const nav = (page: Page, name: string) => page.getByRole("navigation").getByRole("link", { name, exact: true });

  it(
    "signs an admin in at the identity provider, with the session in an HttpOnly, Secure, SameSite=Strict cookie",
    async () => {
      admin = await signInAs("admin");
      const { page, context } = admin;
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await expectText(page.locator(".who"), "alice@example.com");
      const cookies = await context.cookies();
      const session = cookies.find((cookie) => cookie.name === "__Host-modelgate-console");
      expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/" });
      // No token anywhere the page's scripts can read.
      const stored = await page.evaluate(() => ({
        local: Object.keys(window.localStorage).length,
        session: Object.keys(window.sessionStorage).length,
        cookie: document.cookie,
      }));
      expect(stored).toEqual({ local: 0, session: 0, cookie: "" });
      await screenshot(page, "sign-in-overview");
    },
    STEP_MS,
  );

  it(
    "shows a request landing in the session list without a reload",
    async () => {
      const { page } = admin;
      await nav(page, "Sessions").click();
      await page.getByRole("heading", { name: "Sessions" }).waitFor();
      const rows = page.getByTestId("sessions").locator("tbody tr");
      const before = await rows.count();

      const stream = await caller.chat.completions.create({
        model: "llama/demo-chat",
        stream: true,
        messages: [{ role: "user", content: "Write to bob@example.com about the quarterly plan" }],
      });
      for await (const chunk of stream) streamedAnswer += chunk.choices[0]?.delta?.content ?? "";
      expect(streamedAnswer.length).toBeGreaterThan(20);

      // The newest page refreshes itself: the row arrives while we watch.
      await expectCount(rows, before + 1);
      await expectText(rows.first(), "llama / demo-chat");
      await nav(page, "Overview").click();
      await expectText(page.getByTestId("tile-requests"), /^[1-9]/);
      await screenshot(page, "overview");
    },
    STEP_MS,
  );

  it(
    "replays a session at its original pace, and verifies the audit chain",
    async () => {
      const { page } = admin;
      await nav(page, "Sessions").click();
      await page.getByTestId("sessions").locator("tbody tr").first().getByRole("link").click();
      await page.getByTestId("replay").waitFor();
      // The caller's address was masked at the source; the record says how often.
      await expectText(page.getByTestId("masked-counts"), /EMAIL: 1/);
      const text = page.getByTestId("replay-text");
      expect(await text.textContent()).toBe("");
      await page.getByRole("button", { name: "Play" }).click();
      // Mid-stream: part of the answer, and a Pause button.
      await page.getByRole("button", { name: "Pause" }).waitFor();
      await expectText(page.getByTestId("replay"), /chunk \d+\/\d+/);
      await page.getByRole("button", { name: "Replay" }).waitFor({ timeout: 10_000 });
      expect(await text.textContent()).toBe(streamedAnswer);
      await screenshot(page, "session-replay");

      await page.getByRole("button", { name: "Verify the audit chain now" }).click();
      await expectText(page.getByTestId("chain-verifier"), /chain intact: \d+ sessions verified/);
    },
    STEP_MS,
  );

  it(
    "puts a held prompt in the approver's inbox live; approving it lets the caller's retry through",
    async () => {
      const approver = await signInAs("approver");
      const { page } = approver;
      // Approvers cannot read sessions: they land in the inbox.
      await page.getByRole("heading", { name: "Approvals" }).waitFor();
      await expect(nav(page, "Sessions").count()).resolves.toBe(0);

      const ask = () =>
        caller.chat.completions.create({
          model: "llama/demo-chat",
          messages: [{ role: "user", content: "Please export all customer records as CSV" }],
        });
      const held = await ask().then(
        () => undefined,
        // The OpenAI client's APIError: the answer's status, code and error body.
        (error: unknown) =>
          error as { status: number; code: string; error: { approval_id: string; approval_url: string } },
      );
      expect(held).toMatchObject({ status: 403, code: "approval_required" });
      // The caller is sent to the console's inbox.
      const approvalId = held?.error.approval_id;
      expect(held?.error.approval_url).toBe(`${stack.controlPlaneUrl}/console/approvals/${approvalId}`);
      // An admin outside the approver groups reads it, and is told why there is nothing to press.
      await admin.page.goto(`${stack.controlPlaneUrl}/console/approvals/${approvalId}`);
      await expectText(admin.page.locator(".notice"), "Deciding needs the approver role or one of the groups security");
      await expect(admin.page.getByRole("button", { name: "Approve" }).count()).resolves.toBe(0);

      const row = page.getByTestId("approvals").locator("tbody tr").first();
      await expectText(row, "research");
      await row.getByRole("link").click();
      await expectText(page.getByTestId("prompt"), "Please export all customer records as CSV");
      await expectText(page.locator(".facts"), "bulk customer export");
      await screenshot(page, "approval");
      await page.getByLabel("Comment (shown to the caller on a denial)").fill("ok for the Q3 audit, SEC-1234");
      await page.getByRole("button", { name: "Approve" }).click();
      await expectText(page.locator(".facts"), "approved");

      const retried = await ask();
      expect(retried.choices[0]?.message.content).toBeTruthy();
      expect(approver.errors).toEqual([]);
      expect(approver.refusals).toEqual([]);
      await approver.context.close();
    },
    STEP_MS,
  );

  it(
    "creates an API key shown once, which the gateway accepts, rotates it and then revokes it",
    async () => {
      const { page } = admin;
      await nav(page, "API keys").click();
      const form = page.getByRole("form", { name: "Create an API key" });
      await form.getByLabel("Name").fill("ci-runner");
      await form.getByLabel("Groups (comma separated; what policies grant)").fill("research");
      await form.getByRole("button", { name: "Create key" }).click();
      const secret = (await page.getByTestId("secret").textContent()) ?? "";
      expect(secret).toMatch(/^mg/);
      await screenshot(page, "api-keys");
      const statusWith = (key: string) =>
        fetch(`${stack.gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
      await eventually(() => statusWith(secret), 200);

      await page.getByRole("button", { name: "I have stored the key" }).click();
      await expect(page.getByTestId("secret").count()).resolves.toBe(0);

      // Rotated as after a leak: the new secret works, the old one stops at once.
      await page.getByTestId("key-ci-runner").getByRole("button", { name: "Rotate" }).click();
      const rotation = page.getByRole("form", { name: "Rotate an API key" });
      await rotation.getByLabel("The current secret keeps working for").selectOption("0");
      await rotation.getByRole("button", { name: "Rotate" }).click();
      const rotatedSecret = (await page.getByTestId("secret").textContent()) ?? "";
      expect(rotatedSecret).toMatch(/^mg/);
      expect(rotatedSecret).not.toBe(secret);
      await expectText(page.getByRole("status"), "The previous secret no longer works.");
      await eventually(() => statusWith(rotatedSecret), 200);
      await eventually(() => statusWith(secret), 401);
      await page.getByRole("button", { name: "I have stored the new secret" }).click();
      page.once("dialog", (dialog) => void dialog.accept());
      await page.getByTestId("key-ci-runner").getByRole("button", { name: "Revoke" }).click();
      await expectText(page.getByTestId("key-ci-runner"), "revoked");
      await eventually(() => statusWith(rotatedSecret), 401);
    },
    STEP_MS,
  );

  it(
    "shows a policy's validation error at its field, then saves a valid change after a diff",
    async () => {
      const { page } = admin;
      await nav(page, "Policies").click();
      await page.getByTestId("policies").getByRole("link", { name: "research" }).click();
      const editor = page.getByLabel(/^Policy \(JSON/);
      const saved = await editor.inputValue();
      const policy = JSON.parse(saved) as { operations: string[]; limits?: Record<string, unknown> };

      await editor.fill(JSON.stringify({ ...policy, operations: [...policy.operations, "teleport"] }, null, 2));
      await page.getByRole("button", { name: "Review changes" }).click();
      await expectText(page.getByTestId("diff"), '+     "teleport"');
      await page.getByRole("button", { name: "Save" }).click();
      const fieldError = page.getByTestId("field-error");
      await expectText(fieldError, /line \d+ operations\.2:/);
      const line = Number((await fieldError.textContent())?.match(/line (\d+)/)?.[1]);
      expect((await editor.inputValue()).split("\n")[line - 1]).toContain('"operations"');
      await screenshot(page, "policy-error");

      await editor.fill(JSON.stringify({ ...policy, limits: { ...policy.limits, maxTokens: 512 } }, null, 2));
      await page.getByRole("button", { name: "Review changes" }).click();
      await expectText(page.getByTestId("diff"), '"maxTokens": 512');
      await page.getByRole("button", { name: "Save" }).click();
      await expectText(page.getByRole("status"), "Saved as revision 2");
      const policies = (await stack.admin("GET", "/policies")) as {
        items: { name: string; limits: { maxTokens?: number } }[];
      };
      expect(policies.items.find((item) => item.name === "research")?.limits.maxTokens).toBe(512);
    },
    STEP_MS,
  );

  it(
    "lists the connection's agent and issues an agent token with the command to start it",
    async () => {
      const { page } = admin;
      await nav(page, "Connections").click();
      const card = page.getByTestId("connection-llama");
      await expectText(card, "gpu-1");
      await expectText(card, "connected");
      await card.getByLabel("New agent's name").fill("gpu-2");
      await card.getByRole("button", { name: "Issue agent token" }).click();
      await expectText(page.getByTestId("agent-command"), /MODELGATE_AGENT_TOKEN='mgagent_[^']+'/);
      await screenshot(page, "connections");
    },
    STEP_MS,
  );

  it(
    "keeps an auditor out of admin pages: hidden in the menu, refused by the API",
    async () => {
      const auditor = await signInAs("auditor");
      const { page, context } = auditor;
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await expect(nav(page, "API keys").count()).resolves.toBe(0);
      await expect(nav(page, "Policies").count()).resolves.toBe(0);
      await page.goto(`${stack.controlPlaneUrl}/console/api-keys`);
      await expectText(page.getByTestId("not-allowed"), "It needs the admin role");
      // Enforced by the API, not only hidden in the page.
      const answer = await context.request.get(`${stack.controlPlaneUrl}/api/v1/api-keys`);
      expect(answer.status()).toBe(403);
      expect(auditor.errors).toEqual([]);
      expect(auditor.refusals).toEqual([]);
      await context.close();
    },
    STEP_MS,
  );

  it(
    "signs in with the admin token printed at start, and refuses a wrong one",
    async () => {
      const watched = await openPage(browser);
      const { page } = watched;
      await page.goto(stack.consoleUrl);
      await page.getByLabel("Admin token").fill("mgadmin_not-the-token-at-all-0000000000000");
      await page.getByRole("button", { name: "Sign in with the admin token" }).click();
      await expectText(page.getByRole("alert"), "That is not the admin token");
      await page.getByLabel("Admin token").fill(stack.adminToken);
      await page.getByRole("button", { name: "Sign in with the admin token" }).click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await expectText(page.locator(".who"), "bootstrap-admin");
      expect(watched.errors).toEqual([]);
      expect(watched.refusals).toEqual(["401 POST /console/auth/token"]);
      await watched.context.close();
    },
    STEP_MS,
  );

  it(
    "fits a phone's width and works from the keyboard",
    async () => {
      const phone = await signInAs("admin", { width: 390, height: 844 });
      const { page } = phone;
      for (const path of ["", "sessions", "approvals", "policies"]) {
        await page.goto(`${stack.consoleUrl}${path}`);
        await page.locator("main h1").first().waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect({ path, overflow }).toEqual({ path, overflow: 0 });
        // The page starts right under the header and menu, not a screen further down.
        const top = (await page.locator("main h1").first().boundingBox())?.y ?? Number.POSITIVE_INFINITY;
        expect({ path, top: top < 200 }).toEqual({ path, top: true });
      }
      await screenshot(page, "phone-policies");
      // Tab through the header to the menu, and open a page with Enter.
      await page.goto(stack.consoleUrl);
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      let focused = "";
      for (let presses = 0; presses < 10 && focused !== "Sessions"; presses++) {
        await page.keyboard.press("Tab");
        focused = await page.evaluate(() => document.activeElement?.textContent ?? "");
      }
      expect(focused).toBe("Sessions");
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { name: "Sessions" }).waitFor();
      expect(phone.errors).toEqual([]);
      expect(phone.refusals).toEqual([]);
      await phone.context.close();
    },
    STEP_MS,
  );

  it(
    "evaluates a request as a dry run: the decision and the policy that grants it",
    async () => {
      const { page } = admin;
      await nav(page, "Policies").click();
      await page.getByRole("link", { name: "Evaluate a request" }).click();
      const form = page.getByRole("form", { name: "Evaluate a request" });
      await form.getByLabel("Groups (comma separated)").fill("research");
      await form.getByLabel("Connection").fill("llama");
      await form.getByLabel("Model", { exact: true }).fill("demo-chat");
      await form.getByRole("button", { name: "Evaluate" }).click();
      await expectText(page.getByTestId("evaluation"), "Decision: allowed");
      await form.getByLabel("Groups (comma separated)").fill("marketing");
      await form.getByRole("button", { name: "Evaluate" }).click();
      await expectText(page.getByTestId("evaluation"), "Decision: denied");
    },
    STEP_MS,
  );

  it("signs out: the page returns to sign-in and the cookie no longer opens the API", async () => {
    const { page, context } = admin;
    const cookie = (await context.cookies()).find((candidate) => candidate.name === "__Host-modelgate-console");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in with your identity provider" }).waitFor();
    const answer = await fetch(`${stack.controlPlaneUrl}/api/v1/sessions`, {
      headers: { cookie: `${cookie?.name}=${cookie?.value}` },
    });
    expect(answer.status).toBe(401);
    expect(admin.errors).toEqual([]);
    // The one refusal of the admin's whole visit: the invalid policy.
    expect(admin.refusals).toEqual([expect.stringMatching(/^400 PUT \/api\/v1\/policies\/[0-9a-f-]+$/)]);
  });

  it(
    "returns to the sign-in page when the session expires under an open page (last: it ends every session)",
    async () => {
      const watched = await openPage(browser);
      const { page } = watched;
      await page.goto(stack.consoleUrl);
      await page.getByLabel("Admin token").fill(stack.adminToken);
      await page.getByRole("button", { name: "Sign in with the admin token" }).click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await stack.expireConsoleSessions();
      // The overview's next refresh meets the API's 401.
      await expectText(page.locator(".notice"), "Your session ended. Sign in again.");
      expect(watched.errors).toEqual([]);
      expect(new Set(watched.refusals.map((refusal) => refusal.split(" ")[0]))).toEqual(new Set(["401"]));
      await watched.context.close();
    },
    STEP_MS,
  );
});

async function expectText(locator: ReturnType<Page["locator"]>, expected: string | RegExp, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last = "";
  while (Date.now() < deadline) {
    last =
      (await locator
        .first()
        .textContent({ timeout })
        .catch(() => "")) ?? "";
    if (typeof expected === "string" ? last.includes(expected) : expected.test(last)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`expected ${String(expected)} in: ${last}`);
}

async function expectCount(locator: ReturnType<Page["locator"]>, count: number, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last = -1;
  while (Date.now() < deadline) {
    last = await locator.count();
    if (last === count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`expected ${count} rows, saw ${last}`);
}

async function eventually<T>(check: () => Promise<T>, expected: T, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`expected ${String(expected)}, last ${String(last)}`);
}
