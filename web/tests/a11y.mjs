// Accessibility: axe-core finds no serious or critical violation on the
// login, conversation list, chat, directory and dialog screens (desktop
// and 360 px wide); a message can be sent with the keyboard alone; Escape
// closes dialogs and gives focus back. Screenshots of the main screens at
// both sizes go to ENCLAVE_ARTIFACTS.
import {
  NODES, assert, axeCheck, log, login, newPage, openDirect, run, screenshot, sendText, user, waitForRows,
} from './lib.mjs';

const nonce = Math.random().toString(36).slice(2, 7);
const problems = [];
const axe = (page, screen) => axeCheck(page, screen, problems);

/** Press Tab until `selector` has focus (at most `max` times). */
async function tabTo(page, selector, max = 60) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

run('a11y', async ({ browser, track }) => {
  // Desktop.
  const L = await newPage(browser);
  const lb = track(L.page);
  await login(lb, 1 % NODES.length, 'lisi');
  const A = await newPage(browser);
  const za = track(A.page);
  await za.goto(`${NODES[0]}/`);
  await za.waitForSelector('[data-testid="login-form"]');
  await axe(za, 'login');
  await screenshot(za, 'screen-login-desktop');
  await login(za, 0, 'zhangsan');

  // A conversation to look at.
  await openDirect(za, 'lisi');
  await sendText(za, `无障碍测试 ${nonce}`);
  await waitForRows(za, `无障碍测试 ${nonce}`, 1);
  await lb.locator('[data-testid="conversation"][data-title="张三"]').click();
  await sendText(lb, `回复 ${nonce}`);
  await waitForRows(za, `回复 ${nonce}`, 1);

  await za.goto(new URL('#/chats', za.url()).toString());
  await za.locator('[data-testid="conversation"]').first().waitFor();
  await axe(za, 'conversation list');
  await screenshot(za, 'screen-list-desktop');

  // Keyboard only: Tab to the conversation, Enter, Tab to the box, type, Enter.
  await za.evaluate(() => {
    document.activeElement?.blur?.();
    window.scrollTo(0, 0);
  });
  await za.locator('body').focus();
  await tabTo(za, '[data-testid="conversation"][data-title="李四"]');
  await za.keyboard.press('Enter');
  await za.waitForSelector('[data-testid="chat"]');
  await tabTo(za, '[data-testid="composer"]');
  const typed = `键盘发送 ${nonce}`;
  await za.keyboard.type(typed);
  await za.keyboard.press('Enter');
  await waitForRows(za, typed, 1);
  await waitForRows(lb, typed, 1);
  assert(await za.evaluate(() => document.activeElement?.matches('[data-testid="composer"]')), 'focus stays in the message box after sending');
  log('sent with the keyboard');
  await axe(za, 'chat');
  await screenshot(za, 'screen-chat-desktop');

  // A dialog opened and closed by keyboard: focus returns to its opener.
  await za.goto(new URL('#/chats', za.url()).toString());
  await za.locator('[data-testid="new-group"]').focus();
  await za.keyboard.press('Enter');
  await za.waitForSelector('[data-testid="group-create"]');
  assert(await za.evaluate(() => !!document.activeElement?.closest('[data-testid="group-create"]')), 'focus moves into the dialog');
  await axe(za, 'group dialog');
  await za.keyboard.press('Escape');
  await za.waitForSelector('[data-testid="group-create"]', { state: 'detached' });
  // Focus comes back as the dialog unmounts; give a loaded machine a moment.
  const back = await za
    .waitForFunction(() => document.activeElement?.matches('[data-testid="new-group"]'), null, { timeout: 3000 })
    .then(() => true, () => false);
  assert(back, 'focus returns to the opener');
  log('Escape closes dialogs');

  await za.goto(new URL('#/contacts', za.url()).toString());
  await za.locator('[data-testid="department"]').first().waitFor();
  await za.locator('[data-testid="directory-member"]').first().waitFor();
  await axe(za, 'directory');
  await screenshot(za, 'screen-directory-desktop');

  // 360 px wide: list and chat are separate views.
  const N = await newPage(browser, { width: 360, height: 740 });
  const np = track(N.page);
  await np.goto(`${NODES[0]}/`);
  await np.waitForSelector('[data-testid="login-form"]');
  await screenshot(np, 'screen-login-360');
  const u = user('zhangsan');
  await np.fill('[data-testid="login-userid"]', u.userid);
  await np.fill('[data-testid="login-password"]', u.password);
  await np.click('[data-testid="login-submit"]');
  await np.waitForSelector('[data-testid="conn-status"][data-state="live"]');
  await np.locator('[data-testid="conversation"]').first().waitFor();
  await axe(np, 'conversation list 360');
  await screenshot(np, 'screen-list-360');
  await np.locator('[data-testid="conversation"][data-title="李四"]').click();
  await waitForRows(np, typed, 1);
  assert(!(await np.locator('[data-testid="conversation-list"]').isVisible()), 'narrow: the list is hidden in a chat');
  const width = await np.evaluate(() => document.documentElement.scrollWidth);
  assert(width <= 360, `no horizontal scrolling at 360 px (scrollWidth ${width})`);
  await axe(np, 'chat 360');
  await screenshot(np, 'screen-chat-360');
  await np.click('[data-testid="back"]');
  await np.locator('[data-testid="conversation-list"]').waitFor();
  await np.click('[data-testid="nav-contacts"]');
  await np.locator('[data-testid="directory-member"]').first().waitFor();
  await screenshot(np, 'screen-directory-360');

  assert(!problems.length, `serious/critical axe violations:\n  ${problems.join('\n  ')}`);
});
