// Drives the verification page in headless Chromium like a person would: choose a file, type the id,
// press the button, read what the page shows. Run by engine/tests/verify_web.rs:
//
//   node verify_page.mjs PAGE_URL CASES_JSON
//
// CASES_JSON: [{"name", "file", "id", "screenshot"?}]. Prints one JSON line per case with what the page
// showed: {"name", "verdict", "details", "error", "descrambled", "front", "withheld", "outlined"}.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [url, casesFile] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesFile, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1150, height: 1000 } });
  const failures = [];
  page.on("pageerror", (e) => failures.push(String(e)));
  // Chromium logs every 4xx answer as a console error; those are expected here, anything else is not.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) failures.push(m.text());
  });
  await page.goto(url);
  for (const c of cases) {
    await page.setInputFiles("#scan", c.file);
    await page.fill("#certificate-id", c.id);
    // The answer is in once the page has handled the response and cleared its status line.
    const answered = page.waitForResponse((r) => r.url().includes("/api/verify"));
    await page.click("#submit");
    await answered;
    await page.waitForFunction(() => document.getElementById("status").textContent === "");
    // Images are data: URLs; wait until they are decoded so that the screenshot shows them.
    await page.waitForFunction(() => [...document.querySelectorAll(".stack img")].every((i) => i.complete));
    const shown = await page.evaluate(() => {
      const visible = (id) => !document.getElementById(id).hidden;
      const img = (id) => document.querySelector(`#${id} img`);
      return {
        verdict: visible("result") ? document.getElementById("verdict").textContent : null,
        details: visible("result") ? document.getElementById("details").textContent : null,
        error: visible("error") ? document.getElementById("error").textContent : null,
        descrambled: visible("result") && !!img("descrambled") && img("descrambled").naturalWidth > 0,
        front: visible("result") && !!img("front") && img("front").naturalWidth > 0,
        withheld: visible("result") && !!document.querySelector("#front .withheld"),
        outlined: visible("result") ? document.querySelectorAll("#descrambled .block").length : 0,
      };
    });
    if (c.screenshot) await page.screenshot({ path: c.screenshot, fullPage: true });
    console.log(JSON.stringify({ name: c.name, ...shown }));
  }
  if (failures.length) {
    console.error("page errors: " + failures.join("; "));
    process.exitCode = 1;
  }
} finally {
  await browser.close();
}
