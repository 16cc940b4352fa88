// Recall, mentions through the member picker, reply (quote), group
// creation and adding a member, directory search (张 / zhangsan / zs),
// profile -> 1:1 chat, and the English UI.
import {
  NODES, assert, countRows, log, login, newPage, openDirect, run, screenshot, sendText, waitForRows,
} from './lib.mjs';

const nonce = Math.random().toString(36).slice(2, 7);
const n = (i) => i % NODES.length;

run('features', async ({ browser, track }) => {
  const A = await newPage(browser);
  const B = await newPage(browser);
  const C = await newPage(browser);
  const za = track(A.page);
  const lb = track(B.page);
  const wc = track(C.page);
  await login(za, n(0), 'zhangsan');
  await login(lb, n(1), 'lisi');
  await login(wc, n(2), 'wangwu');

  // ---- recall: lisi watches the conversation while zhangsan recalls.
  const keep = `保留 ${nonce}`;
  const gone = `要撤回的 ${nonce}`;
  await openDirect(za, 'lisi');
  await sendText(za, keep);
  await sendText(za, gone);
  await waitForRows(za, gone, 1);
  await lb.locator('[data-testid="conversation"][data-title="张三"]').click();
  await waitForRows(lb, gone, 1);
  await za.locator('[data-testid="message"]', { hasText: gone }).hover();
  await za.locator('[data-testid="message"]', { hasText: gone }).locator('[data-testid="recall"]').click();
  await waitForRows(za, gone, 0);
  await waitForRows(lb, gone, 0);
  assert((await lb.locator('[data-testid="message-recalled"]').count()) >= 1, 'lisi sees the recall tombstone');
  assert((await countRows(lb, keep)) === 1, 'the other message stays');
  log('recall ok');

  // ---- group: create with lisi, then add wangwu from the settings.
  const group = `特性测试 ${nonce}`;
  await za.goto(new URL('#/chats', za.url()).toString());
  await za.click('[data-testid="new-group"]');
  await za.fill('[data-testid="group-name"]', group);
  await za.fill('[data-testid="picker-search"]', '李');
  await za.locator('[data-testid="picker-item"][data-userid="lisi"] input').check();
  await screenshot(za, 'group-create');
  await za.click('[data-testid="group-create-submit"]');
  await za.waitForSelector(`[data-testid="chat-title"]:has-text("${group}")`);
  await za.click('[data-testid="group-settings"]');
  const dlg = za.locator('[data-testid="group-settings-dialog"]');
  await dlg.locator('[data-testid="gs-members"] li[data-userid="lisi"]').waitFor();
  await dlg.locator('[data-testid="picker-search"]').fill('王');
  await dlg.locator('[data-testid="picker-item"][data-userid="wangwu"] input').check();
  await dlg.locator('[data-testid="gs-add"]').click();
  await dlg.locator('[data-testid="gs-members"] li[data-userid="wangwu"]').waitFor();
  await screenshot(za, 'group-settings');
  await za.keyboard.press('Escape');
  await dlg.waitFor({ state: 'detached' });
  // wangwu gets the group live.
  await wc.locator(`[data-testid="conversation"][data-title="${group}"]`).waitFor({ timeout: 30000 });
  log('group create + add member ok');

  // ---- mention through the picker.
  const box = za.locator('[data-testid="composer"]');
  await box.click();
  await box.pressSequentially('@li');
  await za.locator('[data-testid="mention-list"] [data-testid="mention-option"][data-userid="lisi"]').waitFor();
  await screenshot(za, 'mention-picker');
  await box.press('Enter'); // picks the highlighted member
  await box.pressSequentially(`请看一下 ${nonce}`);
  await box.press('Enter'); // sends
  const mentionText = `@李四 请看一下 ${nonce}`;
  await waitForRows(za, mentionText, 1);
  await lb.locator(`[data-testid="conversation"][data-title="${group}"]`).click();
  await waitForRows(lb, mentionText, 1);
  const row = lb.locator('[data-testid="message"]', { hasText: mentionText });
  assert((await row.getAttribute('data-mentions')) === 'lisi', 'the message mentions lisi');
  assert((await row.locator('[data-testid="mention"]').count()) === 1, 'the mention is highlighted');
  log('mention ok');

  // ---- reply (quote): lisi answers the mention.
  await row.hover();
  await row.locator('[data-testid="reply"]').click();
  await lb.locator('[data-testid="replying"]').waitFor();
  const answer = `好的 ${nonce}`;
  await sendText(lb, answer);
  await waitForRows(za, answer, 1);
  const quote = za.locator('[data-testid="message"]', { hasText: answer }).locator('[data-testid="quote"]');
  assert((await quote.textContent()).includes('请看一下'), 'the reply quotes the message');
  log('reply ok');

  // ---- directory search: Chinese prefix, full pinyin, initials.
  await lb.goto(new URL('#/contacts', lb.url()).toString());
  await lb.locator('[data-testid="department"]').first().waitFor();
  await screenshot(lb, 'directory-desktop');
  const misses = [];
  for (const q of ['张', 'zhangsan', 'zs']) {
    await lb.fill('[data-testid="directory-search"]', q);
    try {
      const results = lb.locator(`[data-testid="directory-results"][data-query="${q}"]`);
      await results.waitFor({ timeout: 8000 });
      await results.locator('[data-userid="zhangsan"]').waitFor({ timeout: 2000 });
      log(`search "${q}" finds 张三`);
    } catch {
      log(`search "${q}" does NOT find 张三`);
      misses.push(q);
    }
  }
  await lb.fill('[data-testid="directory-search"]', '张');
  await lb.click('[data-testid="directory-results"][data-query="张"] [data-userid="zhangsan"]');
  await lb.locator('[data-testid="profile-name"]', { hasText: '张三' }).waitFor();
  await screenshot(lb, 'profile');
  await lb.click('[data-testid="start-chat"]');
  await lb.locator('[data-testid="chat-title"]', { hasText: '张三' }).waitFor();
  await waitForRows(lb, keep, 1);
  log('directory + profile -> chat ok');

  // ---- English UI (saved in localStorage).
  await za.selectOption('[data-testid="lang-select"]', 'en');
  await za.locator('[data-testid="nav-chats"]', { hasText: 'Chats' }).waitFor();
  await za.reload();
  await za.locator('[data-testid="nav-chats"]', { hasText: 'Chats' }).waitFor();
  await screenshot(za, 'english-ui');
  await za.selectOption('[data-testid="lang-select"]', 'zh');
  log('i18n ok');

  // Last, so that everything above is checked even while pinyin search is missing.
  assert(!misses.length, `directory search did not find 张三 for: ${misses.join(', ')} (the server matches name prefix, full pinyin and initials)`);
});
