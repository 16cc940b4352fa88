// Announcements and approvals in the web client, across three nodes.
//
// The harness has granted zhangsan `announcement:publish`, made lisi the
// leader of the head office (where everyone is), and defined the leave
// form `leave` (days, kind, dates, amount; flow: leader level 1, then
// wangwu; CC zhaoliu).
//
// Announcements: zhangsan publishes one to everyone (bold, a bullet and a
// numbered list, a link, an attachment, pinned); lisi gets it live with an
// unread badge, opens it (rich text rendered, links safe) and the badge
// goes; zhangsan's statistics show read 1 / unread 2 with 王五 and 赵六 as
// the unread, and the readers' CSV downloads.
//
// Approvals: wangwu files a leave request with a bad amount and sees the
// server's message at the field, fixes it and submits; lisi sees it
// waiting (badge) and approves; step 2 (wangwu himself) is passed over,
// so the request is approved, which wangwu sees live with "skipped" in
// the trail; zhaoliu (CC) finds it under CC. A second request is rejected
// by lisi with a reason, which wangwu sees.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, assert, axeCheck, log, login, newPage, run, screenshot } from './lib.mjs';

const problems = [];

/** YYYY-MM-DD, `days` from today (local time). */
function day(days) {
  const d = new Date(Date.now() + days * 86400_000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

const BODY = [
  '各位同事：',
  '本季度安全培训将于 **下周三下午** 举行，请准时参加。',
  '',
  '- 地点：三楼大会议室',
  '- 时间：14:00 至 16:00',
  '',
  '1. 先阅读 [培训资料](https://intra.example/training?q=1)',
  '2. 完成线上测验',
  '',
  '[不安全的链接](javascript:alert(1)) 只显示为文字。',
].join('\n');

async function badge(page, testid) {
  const el = await page.$(`[data-testid="${testid}"]`);
  return el ? Number(await el.getAttribute('data-count')) : 0;
}

await run('office', async ({ browser, track }) => {
  const z = await newPage(browser);
  const l = await newPage(browser);
  const w = await newPage(browser);
  for (const p of [z, l, w]) {
    track(p.page);
    p.page.on('dialog', (d) => d.accept());
  }
  await login(z.page, 0, 'zhangsan');
  await login(l.page, 1, 'lisi');
  await login(w.page, 2, 'wangwu');

  // ------------------------------------------------------------ announcements
  await z.page.click('[data-testid="nav-announcements"]');
  await z.page.click('[data-testid="ann-new"]');
  await z.page.fill('[data-testid="an-title"]', '季度安全培训通知');
  await z.page.fill('[data-testid="an-body"]', BODY);
  await z.page.fill('[data-testid="an-att-name"]', '培训日程.pdf');
  await z.page.fill('[data-testid="an-att-url"]', 'https://intra.example/files/schedule.pdf');
  await z.page.fill('[data-testid="an-pin"]', day(7));
  // The preview renders the markup as it is typed.
  await z.page.waitForSelector('[data-testid="an-preview"] strong:has-text("下周三下午")');
  await z.page.waitForSelector('[data-testid="an-preview"] ol li:has-text("完成线上测验")');
  await screenshot(z.page, 'announcement-compose');
  await axeCheck(z.page, 'announcement composer', problems);
  await z.page.click('[data-testid="an-publish"]');
  await z.page.waitForSelector('[data-testid="ann-counts"] [data-count="audience"]:has-text("3")');
  const annId = Number(await z.page.getAttribute('[data-testid="ann-page"]', 'data-id'));
  assert(annId > 0, `announcement id ${annId}`);
  log(`zhangsan published announcement ${annId} to everyone (audience 3)`);

  // lisi (another node) gets it live: an unread badge.
  await l.page.waitForSelector('[data-testid="unread-announcements"][data-count="1"]');
  log('lisi sees the unread badge live');
  await l.page.click('[data-testid="nav-announcements"]');
  const item = `[data-testid="ann-pinned"] [data-testid="ann-item"][data-id="${annId}"]`;
  await l.page.waitForSelector(`${item}[data-unread="true"] [data-testid="ann-unread-dot"]`);
  await screenshot(l.page, 'announcement-list');
  await l.page.click(item);
  await l.page.waitForSelector('[data-testid="ann-body"] strong:has-text("下周三下午")');
  // Rich text: a paragraph (two lines joined), a bullet list, a numbered list, a paragraph; all as DOM.
  const shape = await l.page.$eval('[data-testid="ann-body"]', (el) => ({
    children: [...el.children].map((c) => c.tagName.toLowerCase()),
    bullets: el.querySelectorAll('ul > li').length,
    numbered: el.querySelectorAll('ol > li').length,
    links: [...el.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent })),
    scripts: el.querySelectorAll('script, iframe, [onclick], [onerror]').length,
  }));
  assert(JSON.stringify(shape.children) === '["p","ul","ol","p"]', `blocks ${JSON.stringify(shape.children)}`);
  assert(shape.bullets === 2 && shape.numbered === 2, `lists ${shape.bullets}/${shape.numbered}`);
  assert(shape.links.length === 1, `exactly one link (the javascript: one stays text): ${JSON.stringify(shape.links)}`);
  const [link] = shape.links;
  assert(link.href === 'https://intra.example/training?q=1' && link.text === '培训资料', JSON.stringify(link));
  assert(link.target === '_blank' && link.rel.includes('noopener') && link.rel.includes('noreferrer'), `link is safe: ${JSON.stringify(link)}`);
  assert(shape.scripts === 0, 'no active content');
  assert(
    (await l.page.textContent('[data-testid="ann-body"]')).includes('[不安全的链接](javascript:alert(1))'),
    'the javascript: link is shown as text',
  );
  const att = await l.page.$eval('[data-testid="ann-attachment"] a', (a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target }));
  assert(att.href === 'https://intra.example/files/schedule.pdf' && att.rel.includes('noopener') && att.target === '_blank', JSON.stringify(att));
  // Reading it clears the badge and the dot.
  await l.page.waitForSelector('[data-testid="unread-announcements"]', { state: 'detached' });
  await l.page.waitForSelector(`${item}[data-unread="false"]`);
  await screenshot(l.page, 'announcement');
  await axeCheck(l.page, 'announcement page', problems);
  log('lisi read it: rich text rendered, links safe, badge gone');

  // zhangsan's statistics: read 1, unread 2 (王五, 赵六); read: 李四.
  await z.page.click('[data-testid="ann-refresh"]');
  await z.page.waitForSelector('[data-testid="ann-counts"] [data-count="read"]:has-text("1")');
  await z.page.waitForSelector('[data-testid="ann-counts"] [data-count="unread"]:has-text("2")');
  await z.page.waitForSelector('[data-testid="readers-tab-unread"][aria-selected="true"]');
  await z.page.waitForSelector('[data-testid="readers-list"][data-state="unread"] li[data-userid="zhaoliu"]');
  const unread = await z.page.$$eval('[data-testid="readers-list"][data-state="unread"] li', (els) =>
    els.map((e) => `${e.getAttribute('data-userid')}:${e.textContent.trim()}`),
  );
  assert(
    unread.length === 2 && unread.some((s) => s.startsWith('wangwu:王五')) && unread.some((s) => s.startsWith('zhaoliu:赵六')),
    `unread are 王五 and 赵六: ${unread}`,
  );
  await z.page.click('[data-testid="readers-tab-read"]');
  await z.page.waitForSelector('[data-testid="readers-list"][data-state="read"] li[data-userid="lisi"]:has-text("李四")');
  const readers = await z.page.$$eval('[data-testid="readers-list"][data-state="read"] li', (els) => els.length);
  assert(readers === 1, `one reader: ${readers}`);
  await screenshot(z.page, 'announcement-sender');
  await axeCheck(z.page, 'announcement sender page', problems);
  // The CSV export downloads (fetched with the token, saved from a blob).
  const [download] = await Promise.all([z.page.waitForEvent('download'), z.page.click('[data-testid="ann-export"]')]);
  const csvPath = join(ARTIFACTS, 'announcement-readers.csv');
  await download.saveAs(csvPath);
  assert(download.suggestedFilename() === `announcement-${annId}-readers.csv`, download.suggestedFilename());
  const csv = readFileSync(csvPath, 'utf8').replace(/^\uFEFF/, '');
  const rows = csv.trim().split(/\r?\n/);
  assert(rows[0].startsWith('userid,name'), `CSV header: ${rows[0]}`);
  const row = (u) => rows.find((r) => r.startsWith(`${u},`)) ?? '';
  assert(row('lisi').includes(',read,') && row('wangwu').includes(',unread,') && row('zhaoliu').includes(',unread,'), `CSV rows:\n${csv}`);
  assert(rows.length === 4, `a header and three readers:\n${csv}`);
  log('zhangsan: read 1 / unread 2 (王五, 赵六); CSV downloaded');

  // ---------------------------------------------------------------- approvals
  await w.page.click('[data-testid="nav-approvals"]');
  await w.page.click('[data-testid="ap-new"]');
  await w.page.click('[data-testid="tpl-leave"]');
  await w.page.waitForSelector('[data-testid="ap-form"][data-template="leave"]');
  await w.page.fill('[data-testid="ap-field-days"]', '2');
  await w.page.selectOption('[data-testid="ap-field-kind"]', '年假');
  await w.page.fill('[data-testid="ap-field-dates-start"]', day(30));
  await w.page.fill('[data-testid="ap-field-dates-end"]', day(31));
  await w.page.fill('[data-testid="ap-field-amount"]', 'abc');
  assert((await w.page.getAttribute('[data-testid="ap-field-amount"]', 'inputmode')) === 'decimal', 'amount: decimal keyboard');
  await w.page.click('[data-testid="ap-submit"]');
  // The server's message, at the field it names.
  await w.page.waitForSelector('[data-testid="ap-error"][data-field="amount"]');
  const err = await w.page.textContent('[data-testid="ap-error"]');
  assert(err.includes('金额') && err.includes('abc') && err.includes('1234.56'), `the specific error: ${err}`);
  assert((await w.page.getAttribute('[data-testid="ap-field-amount"]', 'aria-invalid')) === 'true', 'the amount is marked invalid');
  await screenshot(w.page, 'approval-error');
  await axeCheck(w.page, 'approval form with an error', problems);
  log(`wangwu's bad amount: ${err}`);
  await w.page.fill('[data-testid="ap-field-amount"]', '1234.50');
  await w.page.click('[data-testid="ap-submit"]');
  await w.page.waitForSelector('[data-testid="ap-page"][data-status="pending"] [data-testid="ap-approvers"]:has-text("李四")');
  const reqId = Number(await w.page.getAttribute('[data-testid="ap-page"]', 'data-id'));
  log(`wangwu filed request ${reqId}; waiting for 李四`);

  // lisi: waiting (badge), approves.
  await l.page.waitForSelector('[data-testid="waiting-approvals"][data-count="1"]');
  await l.page.click('[data-testid="nav-approvals"]');
  await l.page.waitForSelector('[data-testid="ap-tab-waiting"][aria-selected="true"]');
  await l.page.click(`[data-testid="ap-list"][data-box="waiting"] [data-testid="ap-item"][data-id="${reqId}"]`);
  await l.page.waitForSelector('[data-testid="ap-values"] [data-key="amount"] dd:has-text("1234.50")');
  await l.page.waitForSelector('[data-testid="ap-values"] [data-key="kind"] dd:has-text("年假")');
  await screenshot(l.page, 'approval-waiting');
  await axeCheck(l.page, 'approval page (approver)', problems);
  await l.page.click('[data-testid="ap-approve"]');
  await l.page.fill('[data-testid="ap-text"]', '同意，注意交接');
  await l.page.click('[data-testid="ap-confirm"]');
  await l.page.waitForSelector(`[data-testid="ap-page"][data-id="${reqId}"][data-status="approved"]`);
  await l.page.waitForSelector('[data-testid="waiting-approvals"]', { state: 'detached' });
  log('lisi approved step 1');

  // wangwu sees it approved live; step 2 (himself) was passed over.
  await w.page.waitForSelector(`[data-testid="ap-page"][data-id="${reqId}"][data-status="approved"]`);
  const trail = await w.page.$$eval('[data-testid="ap-trail"] li', (els) =>
    els.map((e) => ({ action: e.getAttribute('data-action'), actor: e.getAttribute('data-actor'), text: e.textContent })),
  );
  const actions = trail.map((t) => t.action);
  assert(actions[0] === 'submitted', `trail starts with submitted: ${actions}`);
  assert(trail.some((t) => t.action === 'approved' && t.actor === 'lisi' && t.text.includes('同意，注意交接')), `lisi's approval with the comment: ${JSON.stringify(trail)}`);
  assert(actions.includes('skipped'), `step 2 skipped: ${actions}`);
  assert(actions.indexOf('skipped') > actions.indexOf('approved'), `skipped after lisi's approval: ${actions}`);
  const skipped = trail.find((t) => t.action === 'skipped');
  assert(skipped.actor === 'system' && skipped.text.includes('申请人是这一步唯一的审批人'), `why, translated: ${skipped.text}`);
  assert(!(await w.page.$('[data-testid="ap-withdraw"]')), 'nothing to withdraw once approved');
  await screenshot(w.page, 'approval');
  await axeCheck(w.page, 'approval page (applicant)', problems);
  log(`wangwu sees it approved; trail: ${actions.join(' → ')}`);

  // zhaoliu (CC) finds it under CC.
  const zl = await newPage(browser);
  track(zl.page);
  await login(zl.page, 0, 'zhaoliu');
  await zl.page.click('[data-testid="nav-approvals"]');
  await zl.page.click('[data-testid="ap-tab-cc"]');
  await zl.page.waitForSelector(`[data-testid="ap-list"][data-box="cc"] [data-testid="ap-item"][data-id="${reqId}"][data-status="approved"]`);
  await zl.page.click(`[data-testid="ap-item"][data-id="${reqId}"]`);
  await zl.page.waitForSelector('[data-testid="ap-trail"] li[data-action="skipped"]');
  assert(!(await zl.page.$('[data-testid="ap-approve"]')), 'a CC cannot decide');
  log('zhaoliu sees it under CC');

  // A second request, rejected with a reason.
  await w.page.click('[data-testid="ap-new"]');
  await w.page.click('[data-testid="tpl-leave"]');
  await w.page.fill('[data-testid="ap-field-days"]', '1');
  await w.page.selectOption('[data-testid="ap-field-kind"]', '病假');
  await w.page.fill('[data-testid="ap-field-dates-start"]', day(40));
  await w.page.fill('[data-testid="ap-field-dates-end"]', day(40));
  await w.page.click('[data-testid="ap-submit"]');
  await w.page.waitForSelector('[data-testid="ap-page"][data-status="pending"]');
  const req2 = Number(await w.page.getAttribute('[data-testid="ap-page"]', 'data-id'));
  assert(req2 !== reqId, 'a new request');
  await l.page.waitForSelector('[data-testid="waiting-approvals"][data-count="1"]');
  await l.page.click(`[data-testid="ap-list"][data-box="waiting"] [data-testid="ap-item"][data-id="${req2}"]`);
  await l.page.waitForSelector(`[data-testid="ap-page"][data-id="${req2}"] [data-testid="ap-reject"]`);
  await l.page.click('[data-testid="ap-reject"]');
  assert(await l.page.isDisabled('[data-testid="ap-confirm"]'), 'a rejection needs a reason');
  await l.page.fill('[data-testid="ap-text"]', '项目上线期间人手不足，请改期');
  await l.page.click('[data-testid="ap-confirm"]');
  await l.page.waitForSelector(`[data-testid="ap-page"][data-id="${req2}"][data-status="rejected"]`);
  await w.page.waitForSelector(`[data-testid="ap-page"][data-id="${req2}"][data-status="rejected"]`);
  await w.page.waitForSelector('[data-testid="ap-trail"] li[data-action="rejected"][data-actor="lisi"]:has-text("项目上线期间人手不足，请改期")');
  await screenshot(w.page, 'approval-rejected');
  // wangwu's own list shows both, with their outcome.
  await w.page.click('[data-testid="ap-tab-mine"]');
  await w.page.waitForSelector(`[data-testid="ap-list"][data-box="mine"] [data-testid="ap-item"][data-id="${req2}"][data-status="rejected"]`);
  await w.page.waitForSelector(`[data-testid="ap-list"][data-box="mine"] [data-testid="ap-item"][data-id="${reqId}"][data-status="approved"]`);
  log('lisi rejected the second request with a reason; wangwu sees it');

  // lisi's done list; the narrow layout.
  await l.page.click('[data-testid="ap-tab-done"]');
  await l.page.waitForSelector(`[data-testid="ap-list"][data-box="done"] [data-testid="ap-item"][data-id="${req2}"]`);
  await l.page.setViewportSize({ width: 360, height: 740 });
  await l.page.goto(new URL('#/announcements', l.page.url()).toString());
  await l.page.waitForSelector(`[data-testid="ann-item"][data-id="${annId}"]`);
  await screenshot(l.page, 'announcements-360');
  await axeCheck(l.page, 'announcements at 360 px', problems);
  const overflow = await l.page.$eval('nav.rail', (n) => n.scrollWidth > n.clientWidth + 1);
  assert(!overflow, 'the five nav items fit in 360 px');
  // In English too (the views' strings load with them).
  await l.page.selectOption('[data-testid="lang-select"]', 'en');
  await l.page.waitForSelector('.sidebar .pane-title:has-text("Announcements")');
  await l.page.waitForSelector('[data-testid="ann-pinned"]');
  await l.page.waitForSelector('.pane-sub:has-text("Pinned")');
  assert(!(await l.page.$eval('nav.rail', (n) => n.scrollWidth > n.clientWidth + 1)), 'the English nav fits in 360 px');
  await screenshot(l.page, 'announcements-360-en');
  assert(!problems.length, `serious/critical axe violations:\n  ${problems.join('\n  ')}`);
});
