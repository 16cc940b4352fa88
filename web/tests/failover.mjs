// Node failover with exact resume and idempotent sends:
// zhangsan's page is on node 0, lisi's on node 1. Node 0 is killed. lisi
// sends three messages while it is down and zhangsan types one during the
// outage. zhangsan's page moves to another node and shows every message
// exactly once; lisi gets zhangsan's message exactly once.
import {
  NODES, assert, control, countRows, log, login, newPage, openDirect, run, screenshot, sendText, waitForRows,
} from './lib.mjs';

const nonce = Math.random().toString(36).slice(2, 7);

run('failover', async ({ browser, track }) => {
  assert(NODES.length >= 3, 'failover needs a 3-node cluster');
  const a = await newPage(browser);
  const b = await newPage(browser);
  track(a.page);
  track(b.page);
  const za = a.page;
  const lb = b.page;

  await login(za, 0, 'zhangsan');
  await login(lb, 1, 'lisi');
  const node0 = await za.getAttribute('[data-testid="conn-status"]', 'data-node');
  log(`zhangsan connected to ${node0}`);

  const before = `故障前 ${nonce}`;
  await openDirect(za, 'lisi');
  await sendText(za, before);
  await waitForRows(za, before, 1);
  await lb.locator('[data-testid="conversation"][data-title="张三"]').click();
  await waitForRows(lb, before, 1);
  await screenshot(za, 'failover-before');

  log('killing node 0');
  await control({ kill: 0 });

  // zhangsan types while the node is down (its page has not necessarily noticed yet).
  const mine = `断线时张三发的 ${nonce}`;
  await sendText(za, mine);
  // lisi (node 1) sends three while node 0 is down.
  const theirs = [1, 2, 3].map((i) => `断线消息 ${i} ${nonce}`);
  for (const t of theirs) await sendText(lb, t);

  // zhangsan's page reconnects elsewhere.
  await za.waitForFunction(
    (n0) => {
      const s = document.querySelector('[data-testid="conn-status"]');
      return s?.getAttribute('data-state') === 'live' && s.getAttribute('data-node') !== n0;
    },
    node0,
    { timeout: 60000 },
  );
  const nodeNow = await za.getAttribute('[data-testid="conn-status"]', 'data-node');
  log(`zhangsan reconnected to ${nodeNow}`);

  for (const t of theirs) await waitForRows(za, t, 1, 60000);
  await waitForRows(za, mine, 1, 60000);
  await waitForRows(lb, mine, 1, 60000);
  for (const t of theirs) await waitForRows(lb, t, 1, 60000);
  log('every message delivered');

  // Nothing shows up twice later either (late answers, replays).
  await za.waitForTimeout(3000);
  for (const t of [before, mine, ...theirs]) {
    assert((await countRows(za, t)) === 1, `zhangsan sees "${t}" exactly once (got ${await countRows(za, t)})`);
    assert((await countRows(lb, t)) === 1, `lisi sees "${t}" exactly once (got ${await countRows(lb, t)})`);
  }
  const pending = await za.$$('[data-testid="message"][data-pending]');
  assert(pending.length === 0, 'no message left pending');
  // In order on both sides: seq numbers ascend in the DOM.
  // (Recalled messages are rows too; the list renders a contiguous window.)
  const seqs = await za.$$eval('[data-testid="message-list"] [data-seq]', (els) => els.map((e) => Number(e.dataset.seq)));
  assert(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1), `gap-free sequence on zhangsan's page: ${seqs}`);
  await screenshot(za, 'failover-after');
  await screenshot(lb, 'failover-after-lisi');
});
