// The console's 外部联系人 page and the hand-over of a departed employee
// (离职继承) as an administrator does it: the unassigned list shows 赵六
// (departed) with their contact 客户乙 (乙公司) and customer group; the
// sysadmin transfers everything to 李四 and the list empties; the transfer
// is listed as done. lisi's client (another node) then has the contact's
// conversation, marked 外部 · 乙公司, with 赵六's earlier message and the
// hand-over notice from 系统 (System), and the customer group. The
// sysadmin disables the external account (its login is refused) and
// enables it again; the contact then signs in and sees 李四 under "My
// contacts". The policy is read-only for the sysadmin and changed by the
// secadmin (on the policy page); the auditor sees the page read-only.
//
// Extra contract with the harness: ENCLAVE_ARTIFACTS/setup.json
// ({departed, contact, contact_password, group, message}) — an employee
// with one external contact and one customer group who has departed.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMINS, ARTIFACTS, NODES, apiCall, assert, axeCheck, consoleAs, log, login, newPage, run, screenshot, waitForRows } from './lib.mjs';

const SETUP = JSON.parse(readFileSync(join(ARTIFACTS, 'setup.json'), 'utf8'));
const problems = [];
const axe = (page, screen) => axeCheck(page, screen, problems);

async function flash(page, pattern) {
  await page.waitForFunction(
    (p) => [...document.querySelectorAll('[data-testid="flash"]')].some((e) => new RegExp(p).test(e.textContent)),
    pattern.source,
  );
}

await run('external-console', async ({ browser, track }) => {
  // ---------------------------------------------- sysadmin: hand-over
  const sys = await consoleAs(browser, 'sysadmin');
  const p = track(sys.page);
  await p.goto(`${ADMINS[0]}/#/external`);
  await p.waitForSelector('[data-testid="console-who"][data-role="sysadmin"]');
  const row = `[data-testid="unassigned-row"][data-employee="${SETUP.departed}"]`;
  await p.waitForSelector(`${row} [data-testid="unassigned-contact"][data-userid="${SETUP.contact}"]`);
  await p.waitForSelector(`${row} [data-testid="unassigned-group"][data-conv="${SETUP.group}"]`);
  const rowText = await p.textContent(row);
  assert(rowText.includes('赵六') && rowText.includes('客户乙') && rowText.includes('乙公司'), `the unassigned row: ${rowText}`);
  await screenshot(p, 'console-external-unassigned');
  await axe(p, 'console external');
  log('the unassigned list shows 赵六 with 客户乙 (乙公司) and the customer group');

  await p.click(`${row} [data-testid="transfer-open"]`);
  await p.waitForSelector('[data-testid="transfer-dialog"]');
  await p.fill('[data-testid="transfer-search"]', '李四');
  await p.check('[data-testid="transfer-candidate"][data-userid="lisi"] input');
  assert((await p.$(`[data-testid="transfer-candidate"][data-userid="${SETUP.departed}"]`)) === null, 'the departed employee is not offered');
  await axe(p, 'console transfer dialog');
  await p.click('[data-testid="transfer-submit"]');
  await p.waitForSelector('[data-testid="unassigned-empty"]');
  await flash(p, /转交给/);
  await p.waitForSelector(`[data-testid="transfer-row"][data-from="${SETUP.departed}"][data-to="lisi"][data-status="done"]`);
  await screenshot(p, 'console-external-transferred');
  log('transferred to 李四: the unassigned list is empty and the transfer is done');

  // The policy: read-only for the sysadmin.
  await p.waitForSelector('[data-testid="ext-policy-readonly"]');
  assert((await p.$('[data-testid="ext-policy-save"]')) === null, 'no policy save button for the sysadmin');
  assert(await p.isDisabled('[data-testid="ext-policy-transfer_window_ms"]'), 'the policy fields are read-only for the sysadmin');

  // ------------------------------------ lisi has the contact now
  const ls = await newPage(browser);
  const l = track(ls.page);
  await login(l, 1, 'lisi');
  const lConv = '[data-testid="conversation"][data-external="true"][data-title="客户乙"]';
  await l.waitForSelector(`${lConv} [data-testid="external-badge"][data-org="乙公司"]`, { timeout: 30000 });
  await l.click(lConv);
  await waitForRows(l, SETUP.message);
  await l.waitForFunction(() =>
    [...document.querySelectorAll('[data-testid="message"][data-sender="system:handover"] .msg-sender')].some((e) => e.textContent.trim() === '系统'),
  );
  await screenshot(l, 'external-handover-lisi');
  await l.click('[data-testid="nav-chats"]');
  await l.waitForSelector('[data-testid="conversation"][data-external="true"][data-title="乙公司客户群"]');
  log("lisi (node 1) has 客户乙's conversation with 赵六's message and the hand-over notice from 系统, and the customer group");

  // ------------------------------------ external accounts
  const acct = `[data-testid="ext-account"][data-userid="${SETUP.contact}"]`;
  await p.waitForSelector(`${acct}[data-disabled="false"]`);
  await p.click(`${acct} [data-testid="ext-disable"]`);
  await p.waitForSelector(`${acct}[data-disabled="true"]`);
  const refused = await apiCall(0, 'POST', '/v1/login', { userid: SETUP.contact, password: SETUP.contact_password });
  assert(refused.status !== 200, `a disabled external account cannot log in: ${refused.status} ${JSON.stringify(refused.body)}`);
  await p.click(`${acct} [data-testid="ext-enable"]`);
  await p.waitForSelector(`${acct}[data-disabled="false"]`);
  log(`disabled ${SETUP.contact} (login refused: ${refused.status} ${refused.body?.error?.code}) and enabled it again`);

  // The contact signs in and is served by 李四 now.
  const ks = await newPage(browser);
  const k = track(ks.page);
  await k.goto(`${NODES[2]}/`);
  await k.fill('[data-testid="login-userid"]', SETUP.contact);
  await k.fill('[data-testid="login-password"]', SETUP.contact_password);
  await k.click('[data-testid="login-submit"]');
  await k.waitForSelector('[data-testid="conn-status"][data-state="live"]', { timeout: 60000 });
  await k.click('[data-testid="nav-contacts"]');
  await k.waitForSelector('[data-testid="my-contact"][data-userid="lisi"]');
  assert((await k.$(`[data-testid="my-contact"][data-userid="${SETUP.departed}"]`)) === null, 'the departed employee no longer serves the contact');
  await k.click('[data-testid="my-contact"][data-userid="lisi"]');
  await k.waitForSelector('[data-testid="chat"] [data-testid="external-badge"]');
  await k.waitForFunction(() => document.querySelector('[data-testid="chat-title"]')?.textContent.trim() === '李四');
  await screenshot(k, 'external-handover-contact');
  log('客户乙 signs in: 李四 serves them now');

  // ------------------------------------ secadmin changes the policy
  const sec = await consoleAs(browser, 'secadmin');
  const sp = track(sec.page);
  await sp.goto(`${ADMINS[1]}/#/policy`);
  await sp.waitForSelector('[data-testid="ext-policy-save"]');
  await sp.fill('[data-testid="ext-policy-transfer_window_ms"]', '3600000');
  await sp.click('[data-testid="ext-policy-save"]');
  await flash(sp, /外部联系人策略已保存/);
  await sp.reload();
  await sp.waitForSelector('[data-testid="ext-policy-save"]');
  assert((await sp.inputValue('[data-testid="ext-policy-transfer_window_ms"]')) === '3600000', 'the external policy change is kept');
  log('secadmin set the transfer window to 1 h');

  // ------------------------------------ the auditor reads
  const aud = await consoleAs(browser, 'auditor');
  const ap = track(aud.page);
  await ap.goto(`${ADMINS[2]}/#/external`);
  await ap.waitForSelector('[data-testid="unassigned-empty"]');
  await ap.waitForSelector(`[data-testid="transfer-row"][data-from="${SETUP.departed}"]`);
  await ap.waitForSelector(acct);
  for (const b of ['transfer-open', 'transfer-cancel', 'ext-disable', 'ext-enable', 'ext-policy-save']) {
    assert((await ap.$(`[data-testid="${b}"]`)) === null, `no ${b} for the auditor`);
  }
  // (node 2 applies the change a moment after node 1 answered)
  for (let i = 0; ; i++) {
    if ((await ap.inputValue('[data-testid="ext-policy-transfer_window_ms"]')) === '3600000') break;
    assert(i < 20, "the auditor reads the secadmin's policy");
    await ap.waitForTimeout(500);
    await ap.reload();
    await ap.waitForSelector('[data-testid="ext-policy-transfer_window_ms"]');
  }
  await axe(ap, 'console external (auditor)');
  log('the auditor sees the page read-only');

  assert(problems.length === 0, `accessibility: ${problems.join('; ')}`);
});
