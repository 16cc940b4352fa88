// Shared helpers of the browser tests (plain Node ESM, playwright-core).
//
// Contract with the harness that runs them (`node web/tests/<name>.mjs`):
//   ENCLAVE_NODES      JSON array of api base URLs; the client is at <url>/
//   ENCLAVE_USERS      JSON object {userid: {password, name}} (zhangsan, lisi, wangwu)
//   ENCLAVE_ARTIFACTS  directory for screenshots
//   node control: print `@@control {"kill": i}` on stdout, read one line
//   (`ok`) from stdin once node i is dead.
// Exit code 0 = pass; on failure: a message, failure-*.png, exit 1.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import AxeBuilderModule from '@axe-core/playwright';

const AxeBuilder = AxeBuilderModule.default ?? AxeBuilderModule;

export const NODES = JSON.parse(process.env.ENCLAVE_NODES || '["https://127.0.0.1:8443"]');
export const USERS = JSON.parse(process.env.ENCLAVE_USERS || '{}');
export const ARTIFACTS = process.env.ENCLAVE_ARTIFACTS || join(process.cwd(), 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

const started = Date.now();
export function log(...args) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${s}s]`, ...args);
}

// ------------------------------------------------------------ node control

let stdinLines = null;
function nextStdinLine() {
  if (!stdinLines) {
    const rl = createInterface({ input: process.stdin });
    const queue = [];
    const waiters = [];
    rl.on('line', (l) => {
      const w = waiters.shift();
      if (w) w(l);
      else queue.push(l);
    });
    rl.on('close', () => {
      for (const w of waiters.splice(0)) w(null);
      queue.push(null);
    });
    stdinLines = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  }
  return stdinLines();
}

/** Ask the harness to act on the cluster (e.g. {kill: 0}); waits for its `ok`. */
export async function control(cmd, timeoutMs = 60000) {
  process.stdout.write(`@@control ${JSON.stringify(cmd)}\n`);
  const line = await Promise.race([
    nextStdinLine(),
    new Promise((_, rej) => setTimeout(() => rej(new Error(`no answer to control ${JSON.stringify(cmd)}`)), timeoutMs)),
  ]);
  if (line === null) throw new Error('the harness closed stdin');
  if (line.trim() !== 'ok') throw new Error(`control ${JSON.stringify(cmd)} failed: ${line}`);
}

/** Stop reading stdin so the process can exit. */
function releaseStdin() {
  try {
    process.stdin.pause();
    process.stdin.unref?.();
    process.stdin.destroy();
  } catch {
    /* nothing to release */
  }
}

// ----------------------------------------------------------------- browser

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh browser context (its own sessionStorage) with one page. */
export async function newPage(browser, { width = 1280, height = 800, lang = 'zh' } = {}) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width, height },
    locale: lang === 'zh' ? 'zh-CN' : 'en-US',
    timezoneId: 'Asia/Shanghai',
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`  [page ${m.type()}]`, m.text());
  });
  page.on('pageerror', (e) => log('  [page error]', e.message));
  page.setDefaultTimeout(20000);
  return { context, page };
}

export function user(userid) {
  const u = USERS[userid];
  if (!u) throw new Error(`ENCLAVE_USERS has no ${userid}`);
  return { userid, ...u };
}

/** Open the client on node `i` and log in. */
export async function login(page, nodeIndex, userid, { lang = 'zh' } = {}) {
  const u = user(userid);
  await page.goto(`${NODES[nodeIndex]}/`);
  if (lang !== 'zh') {
    await page.selectOption('[data-testid="lang-select"]', lang);
  }
  await page.fill('[data-testid="login-userid"]', userid);
  await page.fill('[data-testid="login-password"]', u.password);
  await page.click('[data-testid="login-submit"]');
  await page.waitForSelector('[data-testid="conn-status"][data-state="live"]', { timeout: 60000 });
  return u;
}

/** Open (or create) the 1:1 chat with `userid` through the directory profile. */
export async function openDirect(page, peer) {
  await page.goto(new URL(`#/user/${encodeURIComponent(peer)}`, page.url()).toString());
  await page.click('[data-testid="start-chat"]');
  await page.waitForSelector('[data-testid="composer"]');
}

/** Type and send a message with the keyboard (Enter). */
export async function sendText(page, text) {
  const box = page.locator('[data-testid="composer"]');
  await box.click();
  await box.fill(text);
  await box.press('Enter');
}

/** Count message rows with exactly this text. */
export async function countRows(page, text) {
  return page.$$eval(
    '[data-testid="message"] [data-testid="message-text"]',
    (els, t) => els.filter((e) => e.textContent.trim() === t).length,
    text,
  );
}

/** Wait until exactly `n` delivered (non-pending) rows show `text`. */
export async function waitForRows(page, text, n = 1, timeout = 30000) {
  await page.waitForFunction(
    ([t, n]) => {
      const rows = [...document.querySelectorAll('[data-testid="message"]')].filter(
        (r) => !r.hasAttribute('data-pending') && r.querySelector('[data-testid="message-text"]')?.textContent.trim() === t,
      );
      return rows.length === n;
    },
    [text, n],
    { timeout },
  );
}

export async function screenshot(page, name) {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot ${file}`);
}

/**
 * Run axe-core (WCAG 2.1 A/AA and best practices) on the page; log every
 * violation and add the serious or critical ones to `problems`.
 */
export async function axeCheck(page, screen, problems) {
  const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of r.violations) {
    log(`  axe ${screen}: ${v.impact} ${v.id} (${v.nodes.length}) ${v.help}`);
    {
      for (const n of v.nodes.slice(0, 3)) log(`     ${n.target.join(' ')} — ${n.failureSummary?.split('\n')[1] ?? ''}`);
    }
  }
  if (bad.length) problems.push(`${screen}: ${bad.map((v) => `${v.impact} ${v.id}`).join(', ')}`);
  log(`axe ${screen}: ${r.violations.length} violations, ${bad.length} serious/critical`);
}

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

/**
 * Run a scenario: on failure print the error, save failure-<name>-<i>.png
 * of every open page, and exit 1.
 */
export async function run(name, fn) {
  const browser = await launch();
  const pages = [];
  const track = (p) => {
    pages.push(p);
    return p;
  };
  let code = 0;
  try {
    await fn({ browser, track });
    log(`PASS ${name}`);
  } catch (e) {
    code = 1;
    console.error(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    let i = 0;
    for (const p of pages) {
      try {
        await p.screenshot({ path: join(ARTIFACTS, `failure-${name}-${i++}.png`) });
      } catch {
        /* page gone */
      }
    }
  } finally {
    await browser.close().catch(() => {});
    releaseStdin();
  }
  process.exit(code);
}

// ----------------------------------------------------------------- console

export const ADMINS = JSON.parse(process.env.ENCLAVE_ADMINS || '["https://127.0.0.1:9443"]');
const CERTS = JSON.parse(process.env.ENCLAVE_CERTS || '{}');

/** A browser context presenting `role`'s operator certificate to every admin port (confirmation prompts accepted). */
export async function consoleAs(browser, role, { width = 1360, height = 860 } = {}) {
  const c = CERTS[role];
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width, height },
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
    clientCertificates: c ? ADMINS.map((origin) => ({ origin, certPath: c.cert, keyPath: c.key })) : [],
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => log('  [page error]', e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') log('  [page console]', m.text());
  });
  page.on('dialog', (d) => d.accept());
  page.setDefaultTimeout(20000);
  return { context, page };
}

/** A JSON call to node `i`'s api port as a client makes it (Bearer `token` if given): {status, body}. */
export async function apiCall(i, method, path, body, token) {
  const { readFileSync } = await import('node:fs');
  const https = await import('node:https');
  const url = new URL(path, NODES[i]);
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const req = https.request(url, { method, ca: readFileSync(process.env.ENCLAVE_CA), headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (data += c));
      res.on('end', () => {
        let v = null;
        try {
          v = data ? JSON.parse(data) : null;
        } catch {
          v = data;
        }
        resolve({ status: res.statusCode, body: v });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** A JSON call to admin port `i` with `role`'s operator certificate (ENCLAVE_CERTS): {status, body}. */
export async function adminCall(i, role, method, path, body) {
  const { readFileSync } = await import('node:fs');
  const https = await import('node:https');
  const c = CERTS[role];
  if (!c) throw new Error(`ENCLAVE_CERTS has no ${role}`);
  const url = new URL(path, ADMINS[i]);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: readFileSync(process.env.ENCLAVE_CA),
        cert: readFileSync(c.cert),
        key: readFileSync(c.key),
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          let v = null;
          try {
            v = data ? JSON.parse(data) : null;
          } catch {
            v = data;
          }
          resolve({ status: res.statusCode, body: v });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}
