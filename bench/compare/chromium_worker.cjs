// Warm headless Chromium (Debian's chromium driven by playwright-core): one browser and one page for
// the whole run, each document set as the page's content and printed to PDF, as a long-running
// HTML-to-PDF service would do.
//
// Protocol (driven by `bcl-bench compare`): one JSON object per stdin line, {"html": path, "out": path};
// for each, the page is loaded, printed to `out`, and one line "ok BYTES" is printed.
const fs = require("fs");
const readline = require("readline");
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const page = await browser.newPage();
  console.log("ready");
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const job = JSON.parse(line);
    await page.setContent(fs.readFileSync(job.html, "utf8"), { waitUntil: "load" });
    const pdf = await page.pdf({ path: job.out, preferCSSPageSize: true, printBackground: true });
    console.log(`ok ${pdf.length}`);
  }
  await browser.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
