// Two people on two nodes chat live both ways; the reader's read marker
// shows up as a receipt for the sender, in a 1:1 chat and in a group.
import {
  NODES, assert, countRows, log, login, newPage, openDirect, run, screenshot, sendText, waitForRows,
} from './lib.mjs';

const nonce = Math.random().toString(36).slice(2, 7);

run('chat', async ({ browser, track }) => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  track(a.page);
  track(b.page);
  const za = a.page;
  const lb = b.page;

  log(`zhangsan on ${NODES[0]}, lisi on ${NODES[1 % NODES.length]}`);
  await login(za, 0, 'zhangsan');
  await login(lb, 1 % NODES.length, 'lisi');

  // zhangsan -> lisi
  const hello = `你好，李四 ${nonce}`;
  await openDirect(za, 'lisi');
  await sendText(za, hello);
  await waitForRows(za, hello, 1);
  log('zhangsan sent');

  // lisi sees the conversation with an unread badge, opens it, reads it.
  const conv = lb.locator('[data-testid="conversation"][data-title="张三"]');
  await conv.waitFor();
  await lb.waitForFunction(() => {
    const c = document.querySelector('[data-testid="conversation"][data-title="张三"]');
    return c && Number(c.getAttribute('data-unread')) >= 1;
  });
  await screenshot(lb, 'chat-list-unread');
  await conv.click();
  await waitForRows(lb, hello, 1);
  log('lisi got it');

  // zhangsan sees "read" on the message.
  await za.waitForFunction((t) => {
    const row = [...document.querySelectorAll('[data-testid="message"]')].find(
      (r) => r.querySelector('[data-testid="message-text"]')?.textContent.trim() === t,
    );
    return row?.querySelector('[data-testid="receipt"]')?.getAttribute('data-state') === 'read';
  }, hello);
  log('zhangsan sees the receipt');

  // lisi -> zhangsan
  const reply = `收到 ${nonce}`;
  await sendText(lb, reply);
  await waitForRows(za, reply, 1);
  await waitForRows(lb, reply, 1);
  assert((await countRows(za, hello)) === 1, 'hello shown once');
  await screenshot(za, 'chat-direct-desktop');

  // A group: "2 unread" until lisi reads, then "1 unread"; the dialog lists who.
  await za.goto(new URL('#/chats', za.url()).toString());
  await za.click('[data-testid="new-group"]');
  const groupName = `项目组 ${nonce}`;
  await za.fill('[data-testid="group-name"]', groupName);
  for (const u of ['lisi', 'wangwu']) {
    await za.locator(`[data-testid="picker-item"][data-userid="${u}"] input`).check();
  }
  await za.click('[data-testid="group-create-submit"]');
  await za.waitForSelector(`[data-testid="chat-title"]:has-text("${groupName}")`);
  const gmsg = `大家好 ${nonce}`;
  await sendText(za, gmsg);
  await waitForRows(za, gmsg, 1);
  const receiptOf = (t) =>
    za.evaluate((t) => {
      const row = [...document.querySelectorAll('[data-testid="message"]')].find(
        (r) => r.querySelector('[data-testid="message-text"]')?.textContent.trim() === t,
      );
      return row?.querySelector('[data-testid="receipt"]')?.textContent.trim() ?? null;
    }, t);
  await za.waitForFunction(() => /2/.test(document.querySelector('[data-testid="message"] [data-testid="receipt"]')?.textContent ?? ''));
  log('group receipt:', await receiptOf(gmsg));

  await lb.locator(`[data-testid="conversation"][data-title="${groupName}"]`).click();
  await waitForRows(lb, gmsg, 1);
  await za.waitForFunction((t) => {
    const row = [...document.querySelectorAll('[data-testid="message"]')].find(
      (r) => r.querySelector('[data-testid="message-text"]')?.textContent.trim() === t,
    );
    return /1/.test(row?.querySelector('[data-testid="receipt"]')?.textContent ?? '');
  }, gmsg);
  log('group receipt after lisi read:', await receiptOf(gmsg));

  await za.locator('[data-testid="message"]', { hasText: gmsg }).locator('[data-testid="receipt"]').click();
  const dlg = za.locator('[data-testid="receipts-dialog"]');
  await dlg.locator('[data-testid="receipts-read"] li[data-userid="lisi"]').waitFor();
  await dlg.locator('[data-testid="receipts-unread"] li[data-userid="wangwu"]').waitFor();
  await screenshot(za, 'chat-receipts-dialog');
  await za.keyboard.press('Escape');
  await dlg.waitFor({ state: 'detached' });
  await screenshot(za, 'chat-group-desktop');
});
