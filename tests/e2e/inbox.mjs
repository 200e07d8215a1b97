// The inbox as an on-call admin uses it, in headless Chromium (the system's, driven by
// playwright-core): sign in, approve a row and see its run complete, reject one with a note
// and see the note in the run's answer, fill a user-input form with a bad value and see the
// refusal, approve with an edited argument and see the diff, watch a row leave when another
// session resolves it through the API, decide without JavaScript into a conflict, and use it
// at phone width. Screenshots go to KERN_SCREENSHOTS.
//
// Env: KERN_URL and KERN_TOKEN (the `admin_server` example prints both), KERN_SCREENSHOTS (a
// directory), CHROMIUM (default /usr/bin/chromium). Exits non-zero on the first failure.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = required("KERN_URL");
const token = required("KERN_TOKEN");
const shots = process.env.KERN_SCREENSHOTS ?? "screenshots";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the admin_server example and pass its KERN_URL/KERN_TOKEN`);
  return value;
}

function step(name) {
  console.log(`- ${name}`);
}

/** Saves a screenshot: the whole page, or what fits the screen for a long list. */
async function shoot(page, name, { fullPage = true } = {}) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
}

/** The API, as another admin's session uses it. */
async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) assert.fail(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  return response.json();
}

async function signIn(page) {
  await page.goto(base + "/");
  assert.match(new URL(page.url()).pathname, /^\/ui\/sign-in$/, "a visitor without a session is sent to sign in");
  await page.fill("#key", token);
  await Promise.all([page.waitForURL(base + "/"), page.click("button.primary")]);
}

/** Opens the inbox row whose text contains `text`. */
async function openRow(page, text) {
  await page.goto(base + "/");
  await Promise.all([page.waitForURL(/\/ui\/approvals\//), page.locator(".row", { hasText: text }).locator("a").click()]);
}

/** Follows the detail page's run link and waits for the run to complete, pressing Continue
 * when the inbox offers it (no worker continues the run by itself). */
async function runCompletes(page) {
  await Promise.all([page.waitForURL(/\/ui\/runs\//), page.locator(".facts a[href^='/ui/runs/']").click()]);
  for (let attempt = 0; attempt < 60; attempt++) {
    try {
      const status = (await page.locator("#run-status").textContent({ timeout: 2000 })).trim();
      if (status === "completed") return;
      if (await page.locator("#continue").count()) {
        await Promise.all([page.waitForNavigation(), page.click("#continue")]);
        continue;
      }
    } catch {
      // The page reloads itself when the run's status changes.
    }
    await page.waitForTimeout(500);
  }
  assert.fail(`the run did not complete: ${await page.locator("#run-status").textContent()}`);
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
const failures = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => failures.push(`a page script failed: ${err.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
      failures.push(`console error: ${message.text()}`);
    }
  });

  step("a wrong key is refused, the right one signs in");
  await page.goto(base + "/ui/sign-in");
  await page.fill("#key", "kern_0000_wrong");
  await page.click("button.primary");
  await page.locator(".banner.error").waitFor();
  await signIn(page);
  const cookie = (await context.cookies()).find((c) => c.name === "kern_session");
  assert.ok(cookie?.httpOnly && cookie.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    return {
      html_bytes: nav.decodedBodySize,
      response_end_ms: Math.round(nav.responseEnd - nav.startTime),
      dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd - nav.startTime),
      first_contentful_paint_ms: paint ? Math.round(paint.startTime) : null,
      rows_shown: document.querySelectorAll("#rows .row").length,
      pending: Number(document.getElementById("count").textContent),
    };
  });
  console.log(`inbox metrics ${JSON.stringify(timing)}`);
  assert.ok(timing.rows_shown > 0 && timing.pending >= 5, "the inbox lists the pending rows");
  await page.locator("#live:not([hidden])").waitFor();
  await shoot(page, "01-inbox", { fullPage: false });

  step("keyboard: j selects a row, a arms its approve button and k disarms it, / focuses the filter");
  await page.keyboard.press("j");
  await page.locator("#rows .row.selected").waitFor();
  const selectedQuick = page.locator("#rows .row.selected button.approve");
  for (let i = 0; i < 10 && (await selectedQuick.count()) === 0; i++) await page.keyboard.press("j");
  assert.equal(await selectedQuick.count(), 1, "a confirmation row, approved from the list, is selected");
  const armedId = await page.locator("#rows .row.selected").getAttribute("data-id");
  const quick = page.locator(`#rows .row[data-id="${armedId}"] button.approve`);
  await page.keyboard.press("a");
  await quick.filter({ hasText: "Press a again to approve" }).waitFor();
  await page.keyboard.press("k");
  await quick.filter({ hasText: /^Approve$/ }).waitFor();
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "filter");
  await page.keyboard.press("Escape");

  step("filter by tool and page by keyset");
  await page.fill("#filter", "refund_order");
  await Promise.all([page.waitForURL(/tool=refund_order/), page.press("#filter", "Enter")]);
  const tools = await page.locator("#rows .tool").allTextContents();
  assert.ok(tools.length > 0 && tools.every((tool) => tool === "refund_order"), "the filter keeps refund_order rows");
  // The seeded refund_order rows fill more than one page of 50, so a next page must be offered.
  assert.ok((await page.locator("a[rel=next]").count()) > 0, "the filtered rows go on past one page");
  const first = await page.locator("#rows .row").first().getAttribute("data-id");
  await Promise.all([page.waitForURL(/cursor=/), page.click("a[rel=next]")]);
  assert.notEqual(await page.locator("#rows .row").first().getAttribute("data-id"), first, "the next page is another");

  step("approve alice's refund and see the run complete");
  await openRow(page, "A-100");
  await page.locator(".description", { hasText: "Refund an order" }).waitFor();
  await page.locator("table.args", { hasText: "amount_cents" }).waitFor();
  await page.locator(".turns", { hasText: "Refund order A-100" }).waitFor();
  await shoot(page, "02-detail");
  step("the a key approves only when pressed twice");
  const approveButton = page.locator("#approve-form button[value=approve]");
  await page.keyboard.press("a");
  await approveButton.filter({ hasText: "Press a again to approve" }).waitFor();
  assert.equal((await page.locator("#status").textContent()).trim(), "pending", "one press changes nothing");
  await page.keyboard.press("j");
  await approveButton.filter({ hasText: /^Approve$/ }).waitFor();
  await page.keyboard.press("a");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("a")]);
  assert.equal((await page.locator("#status").textContent()).trim(), "approved");
  await runCompletes(page);
  await page.locator("#answer", { hasText: "refunded 1999 cents" }).waitFor();
  await shoot(page, "03-run-completed");

  step("reject bob's refund with a note and see the note in the run's answer");
  const note = "Over the 1,000 EUR refund limit: ask finance.";
  await openRow(page, "B-200");
  await page.fill("#reject-note", note);
  await Promise.all([page.waitForNavigation(), page.click("button.reject")]);
  assert.equal((await page.locator("#status").textContent()).trim(), "rejected");
  await page.locator(".note", { hasText: note }).waitFor();
  await runCompletes(page);
  await page.locator("#answer", { hasText: note }).waitFor();
  await shoot(page, "04-run-rejected");

  step("a user-input form with a bad value is refused, a good one accepted");
  await openRow(page, "extend_trial");
  await page.fill("[name='input.days']", "a fortnight");
  await Promise.all([page.waitForNavigation(), page.click("#approve-form button[value=approve]")]);
  await page.locator(".banner.error", { hasText: "days" }).waitFor();
  assert.equal((await page.locator("#status").textContent()).trim(), "pending", "a refused decision changes nothing");
  assert.equal(await page.inputValue("[name='input.days']"), "a fortnight", "the refused value is kept to correct");
  await shoot(page, "05-user-input-refused");
  await page.fill("[name='input.days']", "14");
  await Promise.all([page.waitForNavigation(), page.click("#approve-form button[value=approve]")]);
  assert.equal((await page.locator("#status").textContent()).trim(), "approved");

  step("edit an argument, see the diff, approve");
  await openRow(page, "raise_card_limit");
  await page.fill("[name='arg.limit_eur']", "2000");
  await page.locator("#edit-diff del", { hasText: "5000" }).waitFor();
  await page.locator("#edit-diff ins", { hasText: "2000" }).waitFor();
  await Promise.all([page.waitForNavigation(), page.click("#edit-form button[value=approve]")]);
  assert.equal((await page.locator("#status").textContent()).trim(), "approved");
  const diff = page.locator("table.diff");
  await diff.locator("del", { hasText: "5000" }).waitFor();
  await diff.locator("ins", { hasText: "2000" }).waitFor();
  await shoot(page, "06-edited");
  await runCompletes(page);
  await page.locator("#answer", { hasText: "2000 EUR" }).waitFor();

  step("a row another session resolves greys out under the pointer, and leaves once the pointer does");
  await page.goto(base + "/");
  await page.locator("#live:not([hidden])").waitFor();
  const carol = page.locator(".row", { hasText: "delete_user_data" });
  const carolId = await carol.getAttribute("data-id");
  const before = Number(await page.locator("#count").textContent());
  await page.evaluate(() => { window.notReloaded = true; });
  await carol.hover();
  await api("POST", `/approvals/${carolId}/resolve`, { status: "rejected", resolution_data: { note: "not today" } });
  await page.locator(`.row.leaving[data-id="${carolId}"]`).waitFor({ timeout: 10000 });
  await page.locator("#refresh:not([hidden])").waitFor();
  assert.equal(Number(await page.locator("#count").textContent()), before - 1, "the live count went down");
  await shoot(page, "07-row-leaving", { fullPage: false });
  await page.mouse.move(0, 0);
  await page.locator(`.row[data-id="${carolId}"]`).waitFor({ state: "detached", timeout: 10000 });
  await page.locator("#refresh").waitFor({ state: "hidden" });
  assert.ok(await page.evaluate(() => window.notReloaded), "the row left without a reload");
  await shoot(page, "07-row-left", { fullPage: false });

  step("a row decided elsewhere while the admin types keeps what they typed, and says it changed");
  const [typing] = (await api("GET", "/approvals?status=pending&tool_name=refund_order&limit=1")).data;
  // No wait for the event stream: it starts after the last event the page was rendered with.
  await page.goto(`${base}/ui/approvals/${typing.id}`);
  await page.evaluate(() => { window.notReloaded = true; });
  await page.fill("#reject-note", "half a sentence");
  await api("POST", `/approvals/${typing.id}/resolve`, { status: "approved" });
  await page.locator("#changed:not([hidden])").waitFor({ timeout: 10000 });
  assert.equal(await page.inputValue("#reject-note"), "half a sentence", "what the admin typed stays");
  assert.ok(await page.evaluate(() => window.notReloaded), "the page was not reloaded under them");
  await shoot(page, "07-detail-changed");

  step("without JavaScript: a decision someone else made first is a clear conflict");
  const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  const noJs = await plain.newPage();
  await signIn(noJs);
  const [target] = (await api("GET", "/approvals?status=pending&tool_name=refund_order&limit=1")).data;
  await noJs.goto(`${base}/ui/approvals/${target.id}`);
  await api("POST", `/approvals/${target.id}/resolve`, { status: "approved" });
  const conflict = await Promise.all([noJs.waitForNavigation(), noJs.click("#approve-form button[value=approve]")]);
  assert.equal(conflict[0].status(), 409);
  // The same admin's key decided it through the API first: "you".
  await noJs.locator(".banner.error", { hasText: /already approved by you at/ }).waitFor();
  await shoot(noJs, "08-conflict-no-js");
  await plain.close();

  step("at phone width nothing overflows");
  const phone = await browser.newContext({ viewport: { width: 360, height: 760 }, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  await signIn(small);
  // A pending row's page, whose forms are the widest part of it.
  const [open] = (await api("GET", "/approvals?status=pending&limit=1")).data;
  for (const [name, path] of [["09-phone-inbox", "/"], ["10-phone-detail", `/ui/approvals/${open.id}`]]) {
    await small.goto(base + path);
    if (path !== "/") assert.ok(await small.locator("#reject-form").count(), "the row's forms are on the page");
    const width = await small.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `${path} is ${width}px wide at 360px`);
    await shoot(small, name, { fullPage: path !== "/" });
  }
  await phone.close();

  step("history lists the decisions and exports them");
  await page.goto(base + "/ui/history?status=rejected");
  await page.locator(".row", { hasText: note }).waitFor();
  const csv = await page.evaluate(async () => (await fetch("/ui/history/export?format=csv&status=rejected")).text());
  assert.ok(csv.startsWith("id,status,tool_name") && csv.includes("Over the 1"), "the CSV export holds the rejection");
  await shoot(page, "11-history");

  step("sign out");
  await Promise.all([page.waitForURL(/\/ui\/sign-in$/), page.click("header button.link")]);
  await page.goto(base + "/");
  assert.match(page.url(), /\/ui\/sign-in$/, "signed out, the inbox asks to sign in again");
  await context.close();
} finally {
  await browser.close();
}
assert.deepEqual(failures, [], "no page script failed");
console.log(`inbox e2e passed; screenshots in ${shots}`);
