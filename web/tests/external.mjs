// External contacts in the web client: zhangsan (who may invite) creates
// an invitation in the page; a person outside opens the link on another
// node, sees who invites them, accepts with the form and signs in with the
// login id the page tells them. As that external account they see their
// contact conversation marked 外部, "My contacts" (the employee who serves
// them) and no directory, notices, announcements, approvals or "new group";
// no request goes to /v1/directory and nothing is refused (403). zhangsan
// sees the badge with the contact's organization, makes a customer group
// with the contact and lisi, and sets a keyword auto-reply in the editor
// (a bad rule is explained first); the contact's matching message gets
// the answer from the group's assistant, shown as 助手 (Assistant).
//
// Extra contract with the harness: the cluster is at log version 3.

import { NODES, assert, axeCheck, log, login, newPage, run, screenshot, sendText, waitForRows } from './lib.mjs';

const EXT = { userid: 'kehu1', name: '客户甲', org: '甲公司', phone: '13800000001', email: 'kehu1@jia.example', password: 'kehu1 own password' };
const problems = [];
const axe = (page, screen) => axeCheck(page, screen, problems);

await run('external', async ({ browser, track }) => {
  // ------------------------------------------------ zhangsan invites
  const zs = await newPage(browser);
  const z = track(zs.page);
  await login(z, 0, 'zhangsan');
  await z.click('[data-testid="nav-external"]');
  await z.waitForSelector('[data-testid="external-list"]');
  await z.click('[data-testid="invite-external"]');
  await z.click('[data-testid="invite-create"]');
  await z.waitForSelector('[data-testid="invite-link"]');
  const link = await z.inputValue('[data-testid="invite-link"]');
  const code = await z.inputValue('[data-testid="invite-code"]');
  assert(link.startsWith(`${NODES[0]}/#/accept/`) && link.endsWith(code) && code.length > 10, `invitation link ${link} / code ${code}`);
  await axe(z, 'invite dialog');
  await z.keyboard.press('Escape');
  log(`zhangsan created an invitation: ${link}`);

  // ------------------------------------- the outsider accepts on node 1
  const guest = await newPage(browser);
  const g = track(guest.page);
  const directoryCalls = [];
  const refused = [];
  g.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/v1/directory')) directoryCalls.push(r.url());
  });
  g.on('response', (r) => {
    if (r.status() === 403) refused.push(`${r.request().method()} ${r.url()}`);
  });
  await g.goto(`${NODES[1]}/#/accept/${encodeURIComponent(code)}`);
  await g.waitForSelector('[data-testid="accept-inviter"]');
  const inviter = await g.getAttribute('[data-testid="accept-inviter"]', 'data-inviter');
  const status = await g.getAttribute('[data-testid="accept-inviter"]', 'data-status');
  assert(inviter === '张三' && status === 'open', `the page names the inviter: ${inviter} (${status})`);
  await axe(g, 'accept page');
  await g.fill('[data-testid="accept-userid"]', 'bad id!');
  await g.fill('[data-testid="accept-name"]', EXT.name);
  await g.fill('[data-testid="accept-org"]', EXT.org);
  await g.fill('[data-testid="accept-password"]', EXT.password);
  await g.fill('[data-testid="accept-confirm"]', EXT.password);
  await g.click('[data-testid="accept-submit"]');
  await g.waitForSelector('[data-testid="accept-error"]');
  log(`a bad login id is explained: ${await g.textContent('[data-testid="accept-error"]')}`);
  await g.fill('[data-testid="accept-userid"]', EXT.userid);
  await g.fill('[data-testid="accept-phone"]', EXT.phone);
  await g.fill('[data-testid="accept-email"]', EXT.email);
  await screenshot(g, 'external-accept');
  await g.click('[data-testid="accept-submit"]');
  await g.waitForSelector('[data-testid="accept-done"]', { timeout: 30000 });
  assert((await g.textContent('[data-testid="accept-login-id"]')).trim() === EXT.userid, 'the page tells the login id');
  await screenshot(g, 'external-accept-done');
  log('the invitation was accepted on node 1');
  // The same link again: used.
  {
    const again = await newPage(browser);
    const a = track(again.page);
    await a.goto(`${NODES[2]}/#/accept/${encodeURIComponent(code)}`);
    await a.waitForSelector('[data-testid="accept-status"][data-status="used"]');
    await again.context.close();
    log('the used link says so on node 2');
  }

  // ------------------------------------------- the external account
  await g.click('[data-testid="accept-login"]');
  await g.waitForSelector('[data-testid="login-form"]');
  assert((await g.inputValue('[data-testid="login-userid"]')) === EXT.userid, 'the login form has the new login id');
  await g.fill('[data-testid="login-password"]', EXT.password);
  await g.click('[data-testid="login-submit"]');
  await g.waitForSelector('[data-testid="conn-status"][data-state="live"]', { timeout: 60000 });
  const extConv = '[data-testid="conversation"][data-external="true"][data-title="张三"]';
  await g.waitForSelector(`${extConv} [data-testid="external-badge"]`);
  for (const gone of ['new-group', 'nav-notices', 'nav-announcements', 'nav-approvals', 'nav-external']) {
    assert((await g.$(`[data-testid="${gone}"]`)) === null, `an external account has no ${gone}`);
  }
  assert((await g.textContent('[data-testid="nav-contacts"]')).includes('我的联系人'), 'the contacts entry is "My contacts"');
  await g.click('[data-testid="nav-contacts"]');
  await g.waitForSelector('[data-testid="my-contact"][data-userid="zhangsan"]');
  assert((await g.$('[data-testid="directory-search"]')) === null, 'no directory for an external account');
  // A directory address typed by hand goes back to the chats.
  await g.goto(`${NODES[1]}/#/user/lisi`);
  await g.waitForFunction(() => location.hash === '#/chats');
  await g.click('[data-testid="nav-contacts"]');
  await g.click('[data-testid="my-contact"][data-userid="zhangsan"]');
  await g.waitForSelector('[data-testid="chat"] [data-testid="external-badge"]');
  assert((await g.textContent('[data-testid="chat-title"]')).trim() === '张三', 'the chat is with 张三');
  await sendText(g, '您好，我是甲公司的客户甲');
  await waitForRows(g, '您好，我是甲公司的客户甲');
  await screenshot(g, 'external-account-chat');
  await axe(g, 'external account chat');
  log('the external account sees its contact conversation marked external, My contacts, no directory');

  // ------------------------------------- zhangsan sees the contact
  await z.click('[data-testid="nav-chats"]');
  const zConv = '[data-testid="conversation"][data-external="true"][data-title="客户甲"]';
  await z.waitForSelector(`${zConv} [data-testid="external-badge"][data-org="甲公司"]`, { timeout: 30000 });
  await z.click(zConv);
  await waitForRows(z, '您好，我是甲公司的客户甲');
  assert((await z.textContent('[data-testid="chat"] [data-testid="external-badge"]')).includes('甲公司'), 'the chat header names the org');
  await sendText(z, '您好，有什么可以帮您？');
  await waitForRows(g, '您好，有什么可以帮您？');
  await screenshot(z, 'external-employee-chat');
  log('zhangsan sees 外部 · 甲公司 in the list and the chat; they talk both ways');

  // ------------------------- a customer group and its auto-replies
  await z.click('[data-testid="nav-external"]');
  await z.waitForSelector('[data-testid="ext-contact"][data-userid="kehu1"]');
  await axe(z, 'external contacts');
  await z.click('[data-testid="new-customer-group"]');
  await z.fill('[data-testid="cg-name"]', '甲公司项目群');
  await z.check('[data-testid="cg-contact"][data-userid="kehu1"] input');
  await z.fill('[data-testid="picker-search"]', '李四');
  await z.check('[data-testid="picker-item"][data-userid="lisi"] input');
  await z.click('[data-testid="cg-create"]');
  await z.waitForSelector('[data-testid="chat"] [data-testid="auto-replies-link"]');
  assert((await z.textContent('[data-testid="chat-title"]')).trim() === '甲公司项目群', 'the new customer group is open');
  // The group's settings mark the external member with their organization.
  await z.click('[data-testid="group-settings"]');
  await z.waitForSelector('[data-testid="gs-members"] li[data-userid="kehu1"] [data-testid="gs-external"]:has-text("甲公司")');
  await z.keyboard.press('Escape');
  await z.click('[data-testid="auto-replies-link"]');
  await z.waitForSelector('[data-testid="auto-replies-form"]');
  // A rule without keywords is explained before anything is sent.
  await z.click('[data-testid="ar-add"]');
  await z.fill('[data-testid="ar-answer"]', '稍后回复');
  await z.click('[data-testid="ar-save"]');
  await z.waitForSelector('[data-testid="ar-error"]');
  log(`an empty rule is refused: ${await z.textContent('[data-testid="ar-error"]')}`);
  await z.fill('[data-testid="ar-keywords"]', '价格, 报价');
  await z.selectOption('[data-testid="ar-mode"]', 'contains');
  await z.fill('[data-testid="ar-answer"]', '价格请咨询销售部，电话 8888');
  await z.click('[data-testid="ar-save"]');
  await z.waitForSelector('[data-testid="ar-status"]');
  await screenshot(z, 'external-auto-replies');
  await axe(z, 'auto-replies editor');
  log('zhangsan made 甲公司项目群 with 客户甲 and 李四 and set an auto-reply');

  // The contact asks; the assistant answers (once), named 助手.
  const gGroup = '[data-testid="conversation"][data-external="true"][data-title="甲公司项目群"]';
  await g.click('[data-testid="nav-chats"]');
  await g.waitForSelector(gGroup, { timeout: 30000 });
  await g.click(gGroup);
  await sendText(g, '请问价格是多少？');
  await waitForRows(g, '价格请咨询销售部，电话 8888', 1, 30000);
  const who = await g.$$eval('[data-testid="message"]', (rows) =>
    rows
      .filter((r) => r.querySelector('[data-testid="message-text"]')?.textContent.trim() === '价格请咨询销售部，电话 8888')
      .map((r) => [r.getAttribute('data-sender'), r.querySelector('.msg-sender')?.textContent.trim()]),
  );
  assert(who.length === 1 && who[0][0].startsWith('assistant:') && who[0][1] === '助手', `the answer comes from the assistant: ${JSON.stringify(who)}`);
  await screenshot(g, 'external-assistant-answer');
  // English UI: the badge and the sender read in English.
  await g.selectOption('[data-testid="lang-select"]', 'en');
  await g.waitForFunction(() => [...document.querySelectorAll('[data-testid="external-badge"]')].some((e) => e.textContent.includes('External')));
  await g.waitForFunction(() => [...document.querySelectorAll('.msg.sys .msg-sender')].some((e) => e.textContent.trim() === 'Assistant'));
  await g.selectOption('[data-testid="lang-select"]', 'zh');
  log('the contact asked about the price and the assistant answered once');

  // Narrow screens.
  await g.setViewportSize({ width: 360, height: 740 });
  await g.evaluate(() => (location.hash = '#/contacts'));
  await g.waitForSelector('[data-testid="my-contact"]');
  await screenshot(g, 'external-account-narrow');
  await axe(g, 'external account 360px');

  assert(directoryCalls.length === 0, `the external account's page asked the directory: ${directoryCalls.join(', ')}`);
  assert(refused.length === 0, `the external account's page was refused: ${refused.join(', ')}`);
  assert(problems.length === 0, `accessibility: ${problems.join('; ')}`);
});
