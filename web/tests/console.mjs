// The admin console in Chromium, on the admin port, with operator
// certificates presented by the browser (playwright's clientCertificates):
// each role sees only its duties, the server refuses the rest, a member the
// sysadmin adds logs in on the web client, the secadmin edits the policy,
// the auditor searches, verifies and exports the chain (the harness then
// checks the export with `enclavectl audit verify`). On 公告与审批 the
// sysadmin reads an announcement's statistics and readers, downloads the
// readers' CSV and withdraws it, creates an approval template (after a
// refusal whose message the page shows), disables and enables it, looks a
// request up and exports finished approvals; the auditor sees it all
// read-only; the secadmin has no such page.
//
// Extra contract with the harness: ENCLAVE_ADMINS (admin URLs),
// ENCLAVE_CERTS ({role: {cert, key}}) and ENCLAVE_ARTIFACTS/setup.json
// ({announcement, approval}: an announcement zhangsan published to
// everyone that lisi has read; a `leave` request lisi approved).

import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { ARTIFACTS, NODES, assert, axeCheck, log, run, screenshot } from './lib.mjs';

const ADMINS = JSON.parse(process.env.ENCLAVE_ADMINS || '["https://127.0.0.1:9443"]');
const CERTS = JSON.parse(process.env.ENCLAVE_CERTS || '{}');
const NEW_PW = 'Initial-pass-1';
const OWN_PW = 'sunqi own password 1';
const problems = [];
const axe = (page, screen) => axeCheck(page, screen, problems);
const SETUP = JSON.parse(readFileSync(join(ARTIFACTS, 'setup.json'), 'utf8'));
const ANN_ROW = `[data-testid="ann-row"][data-id="${SETUP.announcement}"]`;

/** Click `selector`, save the download it starts under ARTIFACTS/`name`; its text and suggested name. */
async function saveDownload(page, selector, name) {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const file = join(ARTIFACTS, name);
  await d.saveAs(file);
  return { text: readFileSync(file, 'utf8'), suggested: d.suggestedFilename() };
}

/** The statistics of the announcement's row: {audience, read, unread, late_read}. */
async function rowCounts(page) {
  return page.$$eval(`${ANN_ROW} [data-count]`, (els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-count'), Number(e.textContent)])));
}

/** A browser context presenting `role`'s certificate to every admin port. */
async function asRole(browser, role, { width = 1360, height = 860 } = {}) {
  const c = CERTS[role];
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width, height },
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
    acceptDownloads: true,
    clientCertificates: c ? ADMINS.map((origin) => ({ origin, certPath: c.cert, keyPath: c.key })) : [],
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => log('  [page error]', e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') log('  [page console]', m.text());
  });
  // Confirmation prompts (disable, depart, rotate) are accepted.
  page.on('dialog', (d) => d.accept());
  page.setDefaultTimeout(20000);
  return { context, page };
}

async function tabs(page) {
  return page.$$eval('nav.console-tabs a', (els) => els.map((e) => e.getAttribute('data-testid')));
}

async function flash(page, pattern) {
  await page.waitForFunction(
    (p) => [...document.querySelectorAll('[data-testid="flash"]')].some((e) => new RegExp(p).test(e.textContent)),
    pattern.source,
  );
}

/** A WeCom-API call to node 0's api port, as an integration makes it. */
function wecom(method, path, body) {
  const url = new URL(path, NODES[0]);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method, ca: readFileSync(process.env.ENCLAVE_CA), headers: { 'content-type': 'application/json' } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(data));
          } catch (e) {
            reject(new Error(`${path}: ${res.statusCode} ${data}`));
          }
        });
      },
    );
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

/** Wait until the audit table shows rows and every row's `attr` matches `re`. */
async function rowsAll(page, attr, re) {
  await page.waitForFunction(
    ([a, r]) => {
      const rows = [...document.querySelectorAll('[data-testid="audit-row"]')];
      return rows.length > 0 && rows.every((e) => new RegExp(r).test(e.getAttribute(a)));
    },
    [attr, re],
  );
}

/** A call from inside the page, as the page's certificate; returns the status. */
async function pageCall(page, method, path, body) {
  return page.evaluate(
    async ([m, p, b]) => (await fetch(p, { method: m, headers: { 'content-type': 'application/json' }, body: b ? JSON.stringify(b) : undefined })).status,
    [method, path, body],
  );
}

/** Whether the page's node offers "defragment": exactly when it does not lead. */
async function defragOffered(page) {
  const state = await page.evaluate(async () => (await (await fetch('/v1/cluster/status')).json()).this_node.state);
  await page.waitForFunction(
    (leads) => (document.querySelector('[data-testid="defrag"] button') !== null) === !leads,
    state === 'leader',
    { timeout: 15000 },
  );
  log(`defragment ${state === 'leader' ? 'not offered on the leader' : `offered on a ${state}`}`);
}

await run('console', async ({ browser, track }) => {
  // ---------------------------------------------------------- refusals
  {
    const { context, page } = await asRole(browser, 'monitor');
    track(page);
    const resp = await page.goto(`${ADMINS[0]}/`);
    assert(resp && resp.status() === 403, `a monitor certificate gets 403 for the console, got ${resp && resp.status()}`);
    await context.close();
    log('monitor certificate refused (403)');
  }
  {
    const { context, page } = await asRole(browser, 'none');
    track(page);
    let failed = false;
    try {
      await page.goto(`${ADMINS[0]}/`, { timeout: 15000 });
    } catch (e) {
      failed = true;
      log(`no certificate: ${String(e.message).split('\n')[0]}`);
    }
    assert(failed, 'without a certificate the admin port does not serve the console');
    await context.close();
  }

  // ---------------------------------------------------------- sysadmin
  const sys = await asRole(browser, 'sysadmin');
  const page = track(sys.page);
  await page.goto(`${ADMINS[0]}/`);
  await page.waitForSelector('[data-testid="console-who"][data-role="sysadmin"]');
  let t = await tabs(page);
  assert(
    JSON.stringify(t) === JSON.stringify(['tab-cluster', 'tab-directory', 'tab-apps', 'tab-office', 'tab-external', 'tab-policy']),
    `sysadmin tabs: ${t}`,
  );

  // Cluster: three members, a leader, certificate expiry per node.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="cluster-row"]').length === 3);
  const leader = await page.textContent('[data-testid="cluster-leader"]');
  assert(leader && leader.startsWith('node-'), `a leader is shown: ${leader}`);
  const expiries = await page.$$eval('[data-testid="cert-expiry"]', (els) => els.map((e) => e.textContent));
  assert(expiries.length === 3 && expiries.every((e) => /^\d{4}-\d{2}-\d{2}/.test(e)), `cert expiry per node: ${expiries}`);
  await page.waitForSelector('[data-testid="leader-changes"] li');
  // A follower's console offers to restart it to defragment its store; the
  // leader's does not (the node would refuse: move leadership first).
  await defragOffered(page);
  const other = track(await sys.page.context().newPage());
  await other.goto(`${ADMINS[1]}/`);
  await other.waitForFunction(() => document.querySelectorAll('[data-testid="cluster-row"]').length === 3);
  await defragOffered(other);
  await axe(other, 'console cluster, a follower');
  await screenshot(other, 'console-cluster-follower');
  await other.close();
  await screenshot(page, 'console-cluster');
  await axe(page, 'console cluster');

  // Directory: a new department and a member in it.
  await page.click('[data-testid="tab-directory"]');
  await page.waitForSelector('[data-testid="dept"][data-dept="1"]');
  await page.click('[data-testid="dept-add"]');
  await page.fill('[data-testid="dept-name"]', '研发部');
  await page.click('[data-testid="dept-save"]');
  await page.waitForSelector('[data-testid="dept"]:has-text("研发部")');
  await page.click('[data-testid="dept"]:has-text("研发部")');
  await page.click('[data-testid="member-add"]');
  await page.fill('[data-testid="new-userid"]', 'sunqi');
  await page.fill('[data-testid="new-name"]', '孙七');
  await page.fill('[data-testid="new-password"]', NEW_PW);
  await page.click('[data-testid="new-member-save"]');
  await flash(page, /孙七/);
  await page.waitForSelector('[data-testid="member-row"][data-userid="sunqi"]');
  log('sysadmin added department 研发部 and member 孙七 (sunqi)');

  // Search by pinyin initials.
  await page.fill('[data-testid="member-search"]', 'sq');
  await page.press('[data-testid="member-search"]', 'Enter');
  await page.waitForSelector('[data-testid="member-row"][data-userid="sunqi"]');
  await page.fill('[data-testid="member-search"]', '');
  await page.press('[data-testid="member-search"]', 'Enter');

  // Manage lisi: disable, activate again, reset the password.
  await page.click('[data-testid="dept"][data-dept="1"]');
  await page.click('[data-testid="member-row"][data-userid="lisi"] [data-testid="member-manage"]');
  await page.waitForSelector('[data-testid="member-dialog"] [data-testid="member-disable"]');
  await page.click('[data-testid="member-disable"]');
  await page.waitForSelector('[data-testid="member-activate"]');
  await page.click('[data-testid="member-activate"]');
  await page.waitForSelector('[data-testid="member-disable"]');
  await page.check('[data-testid="perm-notice-urgent"]');
  await flash(page, /紧急通知/);
  await page.waitForSelector('[data-testid="perm-notice-urgent"]:checked');
  await page.check('[data-testid="perm-announcement-publish"]');
  await flash(page, /李四.*发布公告/);
  await page.waitForSelector('[data-testid="perm-announcement-publish"]:checked');
  await page.fill('[data-testid="reset-password"]', 'lisi reset pw 1');
  await page.click('[data-testid="reset-password-submit"]');
  await flash(page, /李四/);
  await screenshot(page, 'console-member');
  await axe(page, 'console member dialog');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid="member-row"][data-userid="lisi"][data-status="active"]');
  log('sysadmin disabled, re-activated, granted notice:urgent and announcement:publish to and reset the password of 李四');
  await screenshot(page, 'console-directory');
  await axe(page, 'console directory');

  // Apps: register one; its secret is shown once.
  await page.click('[data-testid="tab-apps"]');
  await page.click('[data-testid="app-register"]');
  await page.fill('[data-testid="app-name"]', 'HR-sync');
  await page.check('[data-testid="scope-directory:write"]');
  await page.check('[data-testid="scope-message:send"]');
  await page.check('[data-testid="scope-approval"]');
  await page.click('[data-testid="app-create"]');
  const secret = (await page.textContent('[data-testid="shown-secret"]')).trim();
  const corpid = (await page.textContent('[data-testid="shown-corpid"]')).trim();
  const agentid = Number((await page.textContent('[data-testid="shown-agentid"]')).trim());
  assert(secret.length >= 32 && corpid && agentid > 0, `corpid, agentid and the secret are shown once: ${corpid} ${agentid} ${secret}`);
  await axe(page, 'console app secret');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid="app-row"][data-name="HR-sync"][data-enabled="true"]:has-text("approval")');
  await axe(page, 'console apps');
  log('sysadmin registered HR-sync (with the approval scope)');

  // 公告与审批: the announcement's statistics, body, readers and CSV.
  await page.click('[data-testid="tab-office"]');
  await page.waitForSelector(ANN_ROW);
  let counts = await rowCounts(page);
  assert(
    counts.audience === 3 && counts.read === 1 && counts.unread === 2 && counts.late_read === 0,
    `statistics of the announcement: ${JSON.stringify(counts)}`,
  );
  await page.click(`${ANN_ROW} [data-testid="ann-open"]`);
  await page.waitForSelector('[data-testid="ann-body"] strong:has-text("22:00")');
  await page.waitForSelector('[data-testid="ann-body"] ul li:has-text("维护期间无法登录")');
  const [lhref, lrel, ltarget] = await page.$eval('[data-testid="ann-body"] a', (a) => [a.getAttribute('href'), a.rel, a.target]);
  assert(
    lhref === 'https://intra.example/maintenance' && lrel.includes('noopener') && lrel.includes('noreferrer') && ltarget === '_blank',
    `the body's link: ${lhref} ${lrel} ${ltarget}`,
  );
  await page.waitForSelector('[data-testid="readers"][data-state="unread"]');
  const unread = await page.$$eval('[data-testid="reader"]', (els) => els.map((e) => e.getAttribute('data-userid')).sort());
  assert(JSON.stringify(unread) === '["wangwu","zhaoliu"]', `the unread: ${unread}`);
  await page.click('[data-testid="readers-read"]');
  await page.waitForSelector('[data-testid="readers"][data-state="read"] [data-testid="reader"][data-userid="lisi"]');
  const readers = await saveDownload(page, '[data-testid="ann-export"]', 'readers.csv');
  assert(readers.suggested === `announcement-${SETUP.announcement}-readers.csv`, `CSV name: ${readers.suggested}`);
  assert(
    readers.text.includes('userid,name,departments,state,read_at') && /lisi,李四,1,read,\d{4}-/.test(readers.text) && /wangwu,王五,1,unread,/.test(readers.text),
    `the readers' CSV:\n${readers.text}`,
  );
  await flash(page, /已下载/);
  await screenshot(page, 'console-announcement');
  await axe(page, 'console announcement');
  await page.keyboard.press('Escape');
  log(`sysadmin: announcement ${SETUP.announcement} read 1 / unread 2 (王五, 赵六), readers' CSV downloaded`);

  // Approval templates: the server's refusal is shown; then created, disabled, enabled.
  await page.waitForSelector('[data-testid="tpl-row"][data-id="leave"]');
  await page.click('[data-testid="tpl-new"]');
  await page.fill('[data-testid="tpl-id"]', 'expense');
  await page.fill('[data-testid="tpl-json"]', '{"name": "报销",');
  await page.click('[data-testid="tpl-save"]');
  await flash(page, /不是有效的 JSON/);
  const tpl = {
    name: '报销',
    fields: [
      { key: 'amount', label: '金额', type: 'file', required: true },
      { key: 'reason', label: '事由', type: 'text', required: true },
    ],
    flow: [{ leaders: 1 }, { user: 'wangwu' }],
    cc: ['zhaoliu'],
  };
  await page.fill('[data-testid="tpl-json"]', JSON.stringify(tpl, null, 2));
  await page.click('[data-testid="tpl-save"]');
  await flash(page, /unknown field type "file"/);
  log(`refused: ${await page.textContent('[data-testid="tpl-dialog"] [data-testid="flash"]')}`);
  assert((await page.$('[data-testid="tpl-row"][data-id="expense"]')) === null, 'nothing was saved');
  tpl.fields[0].type = 'money';
  await page.fill('[data-testid="tpl-json"]', JSON.stringify(tpl, null, 2));
  await page.click('[data-testid="tpl-save"]');
  await flash(page, /已保存模板“报销”（版本 1）/);
  const expense = '[data-testid="tpl-row"][data-id="expense"]';
  await page.waitForSelector(`${expense}[data-disabled="false"]:has-text("金额 (money")`);
  await page.click(`${expense} [data-testid="tpl-disable"]`);
  await page.waitForSelector(`${expense}[data-disabled="true"]`);
  await page.click(`${expense} [data-testid="tpl-enable"]`);
  await page.waitForSelector(`${expense}[data-disabled="false"]`);
  log('sysadmin created the template 报销 (after the refusal of type "file"), disabled and enabled it');

  // A request by number, with its trail; one that does not exist.
  await page.fill('[data-testid="approval-no"]', '99999');
  await page.click('[data-testid="approval-find"]');
  await flash(page, /no approval request 99999/);
  await page.fill('[data-testid="approval-no"]', String(SETUP.approval));
  await page.click('[data-testid="approval-find"]');
  await page.waitForSelector(`[data-testid="approval-view"][data-id="${SETUP.approval}"][data-status="approved"]`);
  const trail = await page.$$eval('[data-testid="trail-row"]', (els) => els.map((e) => e.getAttribute('data-action')));
  assert(trail[0] === 'submitted' && trail.includes('assigned') && trail[trail.length - 1] === 'approved', `the trail: ${trail}`);
  await page.waitForSelector('[data-testid="trail-row"][data-action="approved"]:has-text("同意，请做好交接")');

  // Finished approvals as CSV, for a date range and one template.
  const today = new Date().toLocaleDateString('sv-SE', { timeZone: 'Asia/Shanghai' });
  await page.fill('[data-testid="export-from"]', '2020-01-01');
  await page.fill('[data-testid="export-to"]', today);
  await page.selectOption('[data-testid="export-template"]', 'leave');
  const approvals = await saveDownload(page, '[data-testid="approvals-export-go"]', 'approvals.csv');
  assert(
    approvals.text.includes(`${SETUP.approval},leave,zhangsan,张三,approved,`) && approvals.text.includes('lisi:approved'),
    `the approvals' CSV (to ${today}):\n${approvals.text}`,
  );
  await screenshot(page, 'console-office');
  await axe(page, 'console office');
  log(`sysadmin found request ${SETUP.approval} (trail ${trail.join(' → ')}) and exported finished approvals`);

  // Withdrawn after a confirmation (accepted by the dialog handler).
  await page.click(`${ANN_ROW} [data-testid="ann-open"]`);
  await page.click('[data-testid="ann-withdraw"]');
  await page.waitForSelector('[data-testid="ann-detail"][data-withdrawn="true"]');
  await flash(page, /已撤回公告/);
  await page.keyboard.press('Escape');
  await page.waitForSelector(`${ANN_ROW}[data-withdrawn="true"]`);
  log('sysadmin withdrew the announcement');
  // Policy: the sysadmin may read it, not change it.
  await page.click('[data-testid="tab-policy"]');
  await page.waitForSelector('[data-testid="policy-readonly"]');
  assert(await page.isDisabled('[data-testid="policy-recall_window_ms"]'), 'policy fields are read-only for the sysadmin');
  assert((await page.$('[data-testid="policy-save"]')) === null, 'no save button for the sysadmin');
  assert((await pageCall(page, 'PUT', '/v1/policy', {})) === 403, 'the server refuses a policy change by the sysadmin');

  // The new member logs in on the web client (another node) and must
  // change the initial password first.
  const emp = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 760 }, locale: 'zh-CN' });
  const ep = track(await emp.newPage());
  await ep.goto(`${NODES[1]}/`);
  await ep.fill('[data-testid="login-userid"]', 'sunqi');
  await ep.fill('[data-testid="login-password"]', NEW_PW);
  await ep.click('[data-testid="login-submit"]');
  await ep.waitForSelector('[data-testid="password-form"]');
  await ep.fill('#pw-old', NEW_PW);
  await ep.fill('#pw-new', OWN_PW);
  await ep.fill('#pw-confirm', OWN_PW);
  await ep.click('[data-testid="password-submit"]');
  await ep.waitForSelector('[data-testid="conn-status"][data-state="live"]', { timeout: 60000 });
  log('孙七 logged in on the web client of node 1 and set their own password');

  // The app just registered sends 孙七 a card; it arrives live, with its link.
  const tok = await wecom('GET', `/cgi-bin/gettoken?corpid=${encodeURIComponent(corpid)}&corpsecret=${encodeURIComponent(secret)}`);
  assert(tok.errcode === 0 && tok.access_token, `gettoken with the console's secret: ${JSON.stringify(tok)}`);
  const sent = await wecom('POST', `/cgi-bin/message/send?access_token=${encodeURIComponent(tok.access_token)}`, {
    touser: 'sunqi',
    msgtype: 'textcard',
    agentid,
    textcard: { title: '入职手续', description: '请完成入职登记', url: 'https://hr.corp.internal/onboard', btntxt: '去登记' },
  });
  assert(sent.errcode === 0, `message/send: ${JSON.stringify(sent)}`);
  await ep.click('[data-testid="conversation"][data-title="HR-sync"]');
  await ep.waitForSelector('[data-testid="rich-links"] a:has-text("去登记")');
  const href = await ep.getAttribute('[data-testid="rich-links"] a', 'href');
  const rel = await ep.getAttribute('[data-testid="rich-links"] a', 'rel');
  assert(href === 'https://hr.corp.internal/onboard' && rel.includes('noopener'), `the card's link: ${href} ${rel}`);
  await screenshot(ep, 'client-app-card');
  log('the app sent 孙七 a card; it arrived live with its link');
  await emp.close();

  // Disabled at once: the app's token stops working.
  await page.click('[data-testid="tab-apps"]');
  await page.click('[data-testid="app-row"][data-name="HR-sync"] [data-testid="app-disable"]');
  await page.waitForSelector('[data-testid="app-row"][data-name="HR-sync"][data-enabled="false"]');
  const refused = await wecom('GET', `/cgi-bin/user/get?access_token=${encodeURIComponent(tok.access_token)}&userid=sunqi`);
  assert(refused.errcode !== 0, `a disabled app's token is refused: ${JSON.stringify(refused)}`);
  log(`sysadmin disabled HR-sync; its token is refused (errcode ${refused.errcode})`);

  // ---------------------------------------------------------- secadmin
  const sec = await asRole(browser, 'secadmin');
  const sp = track(sec.page);
  await sp.goto(`${ADMINS[1]}/`);
  await sp.waitForSelector('[data-testid="console-who"][data-role="secadmin"]');
  t = await tabs(sp);
  assert(JSON.stringify(t) === JSON.stringify(['tab-cluster', 'tab-policy']), `secadmin tabs: ${t}`);
  assert((await pageCall(sp, 'GET', '/v1/announcements')) === 403, 'the server refuses the announcements to the secadmin');
  assert((await pageCall(sp, 'GET', '/v1/approvals/templates')) === 403, 'the server refuses the templates to the secadmin');
  await sp.click('[data-testid="tab-policy"]');
  await sp.waitForSelector('[data-testid="policy-save"]');
  await sp.check('[data-testid="policy-leaders-may-send"]');
  await flash(sp, /安全策略已保存/);
  await sp.fill('[data-testid="policy-recall_window_ms"]', '300000');
  await sp.click('[data-testid="policy-save"]');
  await flash(sp, /安全策略已保存/);
  await sp.reload();
  await sp.waitForSelector('[data-testid="policy-save"]');
  assert((await sp.inputValue('[data-testid="policy-recall_window_ms"]')) === '300000', 'the policy change is kept');
  assert(await sp.isChecked('[data-testid="policy-leaders-may-send"]'), 'the notice policy change is kept');
  await screenshot(sp, 'console-policy');
  await axe(sp, 'console policy');
  assert(
    (await pageCall(sp, 'POST', '/v1/directory/members', { userid: 'x1', name: 'x', departments: [1] })) === 403,
    'the server refuses a directory change by the secadmin',
  );
  log('secadmin changed recall_window_ms; directory writes refused');

  // ---------------------------------------------------------- auditor
  const aud = await asRole(browser, 'auditor');
  const ap = track(aud.page);
  await ap.goto(`${ADMINS[2]}/`);
  await ap.waitForSelector('[data-testid="console-who"][data-role="auditor"]');
  t = await tabs(ap);
  assert(JSON.stringify(t) === JSON.stringify(['tab-audit', 'tab-office', 'tab-external', 'tab-cluster']), `auditor tabs: ${t}`);
  assert((await ap.$('[data-testid="member-add"]')) === null, 'no directory controls for the auditor');
  await ap.waitForSelector('[data-testid="audit-row"]');
  // What the others just did is on the trail.
  await ap.fill('[data-testid="audit-action"]', 'directory.');
  await ap.click('[data-testid="audit-search"]');
  await rowsAll(ap, 'data-action', '^directory\\.');
  const actions = await ap.$$eval('[data-testid="audit-row"]', (els) => els.map((e) => e.getAttribute('data-action')));
  assert(actions.length > 0 && actions.every((a) => a.startsWith('directory.')), `search by action prefix: ${actions}`);
  assert(actions.includes('directory.member.create'), `the member creation is recorded: ${actions}`);
  await ap.fill('[data-testid="audit-action"]', '');
  await ap.fill('[data-testid="audit-actor"]', 'web-secadmin');
  await ap.click('[data-testid="audit-search"]');
  await rowsAll(ap, 'data-actor', '^web-secadmin$');
  const secActions = await ap.$$eval('[data-testid="audit-row"]', (els) => els.map((e) => e.getAttribute('data-action')));
  assert(secActions.includes('policy.set'), `the policy change is recorded: ${secActions}`);
  await ap.fill('[data-testid="audit-actor"]', '');
  await ap.click('[data-testid="audit-search"]');
  await ap.waitForSelector('[data-testid="audit-row"]');

  await ap.click('[data-testid="audit-verify"]');
  await flash(ap, /校验通过/);
  log(`verify: ${await ap.textContent('[data-testid="audit"] [data-testid="flash"]')}`);
  await screenshot(ap, 'console-audit');
  await axe(ap, 'console audit');

  const [download] = await Promise.all([ap.waitForEvent('download'), ap.click('[data-testid="audit-export"]')]);
  const file = join(ARTIFACTS, 'audit-export.jsonl');
  await download.saveAs(file);
  await flash(ap, /已导出/);
  log(`export saved to ${file}`);
  assert(
    (await pageCall(ap, 'PUT', '/v1/directory/members/lisi/status', { status: 'disabled' })) === 403,
    'the server refuses a directory change by the auditor',
  );

  // 公告与审批, read-only: statistics, readers and their CSV, templates, requests.
  await ap.click('[data-testid="tab-office"]');
  await ap.waitForSelector(`${ANN_ROW}[data-withdrawn="true"]`);
  counts = await rowCounts(ap);
  assert(counts.audience === 3 && counts.read === 1, `the auditor sees the statistics: ${JSON.stringify(counts)}`);
  await ap.waitForSelector('[data-testid="tpl-row"][data-id="expense"] [data-testid="tpl-view"]');
  for (const id of ['tpl-new', 'tpl-edit', 'tpl-disable', 'tpl-enable', 'approvals-export']) {
    assert((await ap.$(`[data-testid="${id}"]`)) === null, `no ${id} for the auditor`);
  }
  await ap.click(`${ANN_ROW} [data-testid="ann-open"]`);
  await ap.waitForSelector('[data-testid="ann-body"] strong:has-text("22:00")');
  await ap.waitForSelector('[data-testid="readers"][data-state="unread"] [data-testid="reader"][data-userid="wangwu"]');
  assert((await ap.$('[data-testid="ann-withdraw"]')) === null, 'no withdraw button for the auditor');
  const audReaders = await saveDownload(ap, '[data-testid="ann-export"]', 'readers-auditor.csv');
  assert(audReaders.text.includes('lisi,李四'), `the auditor's readers' CSV:\n${audReaders.text}`);
  await ap.keyboard.press('Escape');
  await ap.click('[data-testid="tpl-row"][data-id="expense"] [data-testid="tpl-view"]');
  assert(await ap.$eval('[data-testid="tpl-json"]', (e) => e.readOnly && e.value.includes('"money"')), 'the template is shown read-only');
  assert((await ap.$('[data-testid="tpl-save"]')) === null, 'no save button for the auditor');
  await ap.keyboard.press('Escape');
  await ap.fill('[data-testid="approval-no"]', String(SETUP.approval));
  await ap.click('[data-testid="approval-find"]');
  await ap.waitForSelector(`[data-testid="approval-view"][data-id="${SETUP.approval}"] [data-testid="trail-row"][data-action="approved"]`);
  assert((await pageCall(ap, 'POST', '/v1/approvals/templates/expense/disable', {})) === 403, 'the server refuses a template change by the auditor');
  assert((await pageCall(ap, 'GET', '/v1/approvals/export.csv')) === 403, 'the server refuses the approvals export to the auditor');
  await screenshot(ap, 'console-office-auditor');
  await axe(ap, 'console office (auditor)');
  log('auditor: 公告与审批 read-only (statistics, readers, CSV, templates, request trail)');

  // Narrow screen: the console still works at 360 px.
  await ap.setViewportSize({ width: 360, height: 740 });
  await ap.click('[data-testid="tab-cluster"]');
  await ap.waitForFunction(() => document.querySelectorAll('[data-testid="cluster-row"]').length === 3);
  const overflow = await ap.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `no horizontal page scroll at 360 px (overflow ${overflow}px)`);
  await screenshot(ap, 'console-narrow');
  await axe(ap, 'console cluster 360');
  assert(!problems.length, `serious/critical axe violations:\n  ${problems.join('\n  ')}`);
});
