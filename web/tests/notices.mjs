// Urgent notices in the web client: zhangsan (who may send) sends one to
// lisi and wangwu on other nodes; it pops up for both; lisi acknowledges,
// wangwu puts it off and is reminded; zhangsan sees the counts live and
// who has not acknowledged, then withdraws it and wangwu sees that.
import { assert, axeCheck, log, login, newPage, run, screenshot } from './lib.mjs';

const problems = [];

await run('notices', async ({ browser, track }) => {
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

  // Compose and send.
  await z.page.click('[data-testid="nav-notices"]');
  await z.page.click('[data-testid="notice-new"]');
  await z.page.fill('[data-testid="nt-title"]', '台风紧急通知');
  await z.page.fill('[data-testid="nt-body"]', '今晚台风登陆，请确认收到并留在室内。');
  for (const [q, u] of [['李', 'lisi'], ['王', 'wangwu']]) {
    await z.page.fill('[data-testid="nt-users"] [data-testid="picker-search"]', q);
    await z.page.locator(`[data-testid="nt-users"] [data-testid="picker-item"][data-userid="${u}"] input`).check();
  }
  await z.page.fill('[data-testid="nt-deadline"]', '5');
  await z.page.fill('[data-testid="nt-every"]', '0.17');
  await axeCheck(z.page, 'notice composer', problems);
  await z.page.click('[data-testid="nt-send"]');
  await z.page.waitForSelector('[data-testid="notice-page"] [data-count="recipients"]:has-text("2")');
  log('zhangsan sent the notice to lisi and wangwu');

  // It asks both recipients at once.
  await l.page.waitForSelector('[data-testid="urgent-dialog"] [data-testid="urgent-title"]:has-text("台风紧急通知")');
  await w.page.waitForSelector('[data-testid="urgent-dialog"] [data-testid="urgent-title"]:has-text("台风紧急通知")');
  await screenshot(l.page, 'notice-dialog');
  await axeCheck(l.page, 'urgent dialog', problems);
  await l.page.click('[data-testid="urgent-ack"]');
  await l.page.waitForSelector('[data-testid="urgent-dialog"]', { state: 'detached' });
  assert((await l.page.$('[data-testid="unacked-notices"]')) === null, 'no badge once acknowledged');
  log('lisi acknowledged');
  await w.page.click('[data-testid="urgent-later"]');
  await w.page.waitForSelector('[data-testid="urgent-dialog"]', { state: 'detached' });
  await w.page.waitForSelector('[data-testid="unacked-notices"]');

  // The sender's counts move live.
  await z.page.waitForSelector('[data-testid="notice-counts"] [data-count="acked"]:has-text("1")');
  await z.page.click('[data-testid="notice-unacked"]');
  await z.page.waitForSelector('[data-testid="unacked-list"] li[data-userid="wangwu"]');
  const listed = await z.page.$$eval('[data-testid="unacked-list"] li', (els) => els.map((e) => e.getAttribute('data-userid')));
  assert(JSON.stringify(listed) === '["wangwu"]', `only wangwu has not acknowledged: ${listed}`);
  await screenshot(z.page, 'notice-sender');
  await axeCheck(z.page, 'notice sender page', problems);

  // wangwu is reminded (every ~10 s) and asked again.
  await w.page.waitForSelector('[data-testid="urgent-dialog"]:has-text("第 1 次提醒")', { timeout: 40000 });
  log('wangwu was reminded');
  await w.page.click('[data-testid="urgent-later"]');

  // Withdrawn: wangwu sees it withdrawn and is asked no more.
  await z.page.click('[data-testid="notice-withdraw"]');
  await w.page.click('[data-testid="nav-notices"]');
  await w.page.waitForSelector('[data-testid="notice-item"] .tag:has-text("已撤回")');
  assert((await w.page.$('[data-testid="unacked-notices"]')) === null, 'a withdrawn notice asks no more');
  await screenshot(w.page, 'notice-withdrawn');
  log('zhangsan withdrew it; wangwu sees it withdrawn');
  assert(!problems.length, `serious/critical axe violations:\n  ${problems.join('\n  ')}`);
});
