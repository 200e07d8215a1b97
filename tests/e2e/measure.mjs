// Measures the inbox's first page: its HTML and asset sizes and the time to first render,
// over several loads in headless Chromium (a figure for the README, never a test).
//
// KERN_URL and KERN_TOKEN as for inbox.mjs; KERN_LOADS loads (5 by default). Start the
// server with many pending rows first, e.g. `KERN_SEED_PENDING=10000`.

import { chromium } from "playwright-core";

const base = process.env.KERN_URL;
const token = process.env.KERN_TOKEN;
const loads = Number(process.env.KERN_LOADS ?? 5);
if (!base || !token) throw new Error("KERN_URL and KERN_TOKEN must be set");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(base + "/ui/sign-in");
  await page.fill("#key", token);
  await Promise.all([page.waitForURL(base + "/"), page.click("button.primary")]);
  const samples = [];
  for (let i = 0; i < loads; i++) {
    await page.goto(base + "/", { waitUntil: "load" });
    samples.push(
      await page.evaluate(() => {
        const nav = performance.getEntriesByType("navigation")[0];
        const assets = performance.getEntriesByType("resource").filter((r) => r.name.includes("/ui/assets/"));
        const paint = performance.getEntriesByName("first-contentful-paint")[0];
        return {
          html_bytes: nav.decodedBodySize,
          asset_bytes: assets.reduce((sum, r) => sum + r.decodedBodySize, 0),
          server_ms: nav.responseStart - nav.requestStart,
          response_end_ms: nav.responseEnd - nav.startTime,
          first_contentful_paint_ms: paint ? paint.startTime : null,
          pending: Number(document.getElementById("count").textContent),
          rows_shown: document.querySelectorAll("#rows .row").length,
        };
      }),
    );
  }
  const median = (key) => {
    const values = samples.map((s) => s[key]).filter((v) => v !== null).sort((a, b) => a - b);
    return values.length ? Math.round(values[Math.floor(values.length / 2)] * 10) / 10 : null;
  };
  const first = samples[0];
  console.log(JSON.stringify({
    loads,
    pending: first.pending,
    rows_shown: first.rows_shown,
    html_bytes: first.html_bytes,
    asset_bytes: first.asset_bytes,
    median_server_ms: median("server_ms"),
    median_response_end_ms: median("response_end_ms"),
    median_first_contentful_paint_ms: median("first_contentful_paint_ms"),
  }));
} finally {
  await browser.close();
}
