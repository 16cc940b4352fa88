// Time to first message on a cold page load (no cache, new browser
// context), against a running node — e.g. the dev node:
//
//   ENCLAVE_NODES='["https://127.0.0.1:8443"]' \
//   ENCLAVE_USER=zhangsan ENCLAVE_PASSWORD='…' node tests/cold-load.mjs [runs]
//
// The user must have at least one conversation with a message. Prints, per
// run and as medians: navigation → login form ready; login submitted →
// conversation list shown; → first message of the top conversation shown;
// and the bytes the page fetched. Not a test: a measurement to report.

import { launch } from './lib.mjs';

const NODES = JSON.parse(process.env.ENCLAVE_NODES || '["https://127.0.0.1:8443"]');
const USER = process.env.ENCLAVE_USER || 'zhangsan';
const PASSWORD = process.env.ENCLAVE_PASSWORD || '';
const RUNS = Number(process.argv[2] || 5);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await launch();
const rows = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    let bytes = 0;
    page.on('response', async (r) => {
      const len = Number((await r.allHeaders())['content-length'] || 0);
      bytes += len;
    });
    const t0 = performance.now();
    await page.goto(`${NODES[0]}/`);
    await page.waitForSelector('[data-testid="login-submit"]');
    const tForm = performance.now();
    await page.fill('[data-testid="login-userid"]', USER);
    await page.fill('[data-testid="login-password"]', PASSWORD);
    const tSubmit = performance.now();
    await page.click('[data-testid="login-submit"]');
    await page.waitForSelector('[data-testid="conversation"]', { timeout: 30000 });
    const tList = performance.now();
    await page.click('[data-testid="conversation"]');
    await page.waitForSelector('[data-testid="message"] [data-testid="message-text"]', { timeout: 30000 });
    const tMsg = performance.now();
    rows.push({ form: tForm - t0, list: tList - tSubmit, message: tMsg - tSubmit, total: tMsg - t0 - (tSubmit - tForm), bytes });
    console.log(
      `run ${i + 1}: form ${(tForm - t0).toFixed(0)} ms; login → list ${(tList - tSubmit).toFixed(0)} ms; login → first message ${(tMsg - tSubmit).toFixed(0)} ms; ${bytes} bytes`,
    );
    await context.close();
  }
} finally {
  await browser.close();
}
const m = (k) => median(rows.map((r) => r[k])).toFixed(0);
console.log(
  `median of ${rows.length}: cold load → login form ${m('form')} ms; login → conversation list ${m('list')} ms; ` +
    `login → first message ${m('message')} ms; cold load to first message without typing ${m('total')} ms`,
);
process.exit(0);
