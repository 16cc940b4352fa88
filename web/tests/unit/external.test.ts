import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LIMITS,
  draftOf,
  emptyDraft,
  firstMatch,
  inviteCode,
  inviteUrl,
  ruleMatches,
  rulesFromDrafts,
  splitKeywords,
  systemSender,
  validUserid,
} from '../../src/logic/external.ts';
import { handoversToShow, noticeNames, takeoverName, type Transfer } from '../../src/logic/handover.ts';

test('keywords are split on commas, 、 and lines, trimmed, once each', () => {
  assert.deepEqual(splitKeywords('价格, 报价，多少钱、Price\nprice ;  '), ['价格', '报价', '多少钱', 'Price']);
  assert.deepEqual(splitKeywords('  '), []);
});

test('the editor rows become the PUT body, or the first problem with its row', () => {
  const ok = rulesFromDrafts([
    { keywords: '价格, 报价', mode: 'contains', answer: '请联系销售' },
    { keywords: 'hi', mode: 'exact', answer: 'Hello' },
  ]);
  assert.deepEqual(ok, {
    rules: [
      { keywords: ['价格', '报价'], mode: 'contains', answer: '请联系销售' },
      { keywords: ['hi'], mode: 'exact', answer: 'Hello' },
    ],
  });
  assert.deepEqual(rulesFromDrafts([]), { rules: [] });
  assert.deepEqual(rulesFromDrafts([{ keywords: 'a', mode: 'exact', answer: 'x' }, emptyDraft()]), { problem: 'noKeywords', index: 1 });
  assert.deepEqual(rulesFromDrafts([{ keywords: 'a', mode: 'exact', answer: '  ' }]), { problem: 'noAnswer', index: 0 });
  assert.deepEqual(rulesFromDrafts([{ keywords: 'x'.repeat(65), mode: 'exact', answer: 'y' }]), { problem: 'keywordTooLong', index: 0 });
  const many = Array.from({ length: 21 }, (_, i) => `k${i}`).join(',');
  assert.deepEqual(rulesFromDrafts([{ keywords: many, mode: 'exact', answer: 'y' }]), { problem: 'tooManyKeywords', index: 0 });
  assert.deepEqual(rulesFromDrafts([{ keywords: 'a', mode: 'exact', answer: 'y'.repeat(1001) }]), { problem: 'answerTooLong', index: 0 });
  const rows = Array.from({ length: LIMITS.rules + 1 }, () => ({ keywords: 'a', mode: 'exact' as const, answer: 'b' }));
  assert.deepEqual(rulesFromDrafts(rows), { problem: 'tooMany', index: LIMITS.rules });
  // A rule shown in the editor and saved again is the same rule.
  const r = { keywords: ['价格', 'Price'], mode: 'contains' as const, answer: '请联系销售' };
  assert.deepEqual(rulesFromDrafts([draftOf(r)]), { rules: [r] });
});

test('rules match as the server matches: trimmed, ignoring case', () => {
  const contains = { keywords: ['价格'], mode: 'contains' as const, answer: 'a' };
  const exact = { keywords: ['Hi'], mode: 'exact' as const, answer: 'b' };
  assert.equal(ruleMatches(contains, '请问价格多少'), true);
  assert.equal(ruleMatches(exact, '  hi '), true);
  assert.equal(ruleMatches(exact, 'hi there'), false);
  assert.equal(firstMatch([exact, contains], '价格'), contains);
  assert.equal(firstMatch([exact, contains], ''), null);
});

test('login ids, invitation links and codes', () => {
  assert.equal(validUserid('kehu.1@jia-co_x'), true);
  for (const bad of ['', 'a b', '张三', 'x'.repeat(65), 'a/b']) assert.equal(validUserid(bad), false, bad);
  assert.equal(inviteUrl('https://n1.example:8443', '/#/accept/inv_abc'), 'https://n1.example:8443/#/accept/inv_abc');
  assert.equal(inviteCode(' https://n1.example:8443/#/accept/inv_abc '), 'inv_abc');
  assert.equal(inviteCode('inv_abc'), 'inv_abc');
});

test('hand-over notices and auto-replies are system senders, not people', () => {
  assert.equal(systemSender('system:handover'), 'systemSender');
  assert.equal(systemSender('assistant:xg3'), 'assistantSender');
  assert.equal(systemSender('zhangsan'), null);
  assert.equal(systemSender('app:1000002'), null);
});

const transfer = (id: number, over: Partial<Transfer> = {}): Transfer => ({
  id,
  from: 'zhangsan',
  to: 'wangwu',
  externals: ['kehu1'],
  groups: [],
  by: 'lisi',
  message: '',
  created_ms: 1_000,
  due_ms: 100_000,
  status: 'waiting',
  objected: [],
  finished_ms: 0,
  ...over,
});

test('an external account is shown its waiting hand-overs and, until the window ends, those it objected to', () => {
  const a = transfer(1, { due_ms: 50_000 });
  const b = transfer(2, { from: 'lisi', due_ms: 20_000 });
  // The server lists both; soonest first.
  assert.deepEqual(
    handoversToShow([a, b], new Map(), new Set(), 'kehu1', 10_000).map((h) => [h.t.id, h.objected]),
    [
      [2, false],
      [1, false],
    ],
  );
  // Objected to in this session: the server no longer lists it; it stays, marked, until due.
  const objected = new Map([[1, { ...a, objected: ['kehu1'] }]]);
  assert.deepEqual(
    handoversToShow([b], objected, new Set(), 'kehu1', 10_000).map((h) => [h.t.id, h.objected]),
    [
      [2, false],
      [1, true],
    ],
  );
  assert.deepEqual(handoversToShow([b], objected, new Set(), 'kehu1', 50_000).map((h) => h.t.id), [2]);
  // Dismissed: gone; a waiting one cannot be dismissed.
  assert.deepEqual(handoversToShow([b], objected, new Set([1, 2]), 'kehu1', 10_000).map((h) => h.t.id), [2]);
  // A listed one the server says I objected to is marked so; ended ones are not shown.
  assert.deepEqual(
    handoversToShow([transfer(3, { objected: ['kehu1'] }), transfer(4, { status: 'done' })], new Map(), new Set(), 'kehu1', 0).map((h) => [
      h.t.id,
      h.objected,
    ]),
    [[3, true]],
  );
});

test("a hand-over notice names who takes over (an external account may not look names up)", () => {
  const text =
    '王五 将于 2026-12-04 20:51（UTC）接替 张三 作为您的对接人；如有异议，请在此之前提出。 / 王五 will take over from 张三 as your contact on 2026-12-04 20:51 (UTC) unless you object before then. 张三调岗';
  assert.deepEqual(noticeNames(text), { to: '王五', from: '张三' });
  assert.equal(noticeNames('您的对接人已由 张三 变更为 王五。 / 王五 now serves you in place of 张三.'), null);
  assert.equal(noticeNames('已取消更换对接人。 / The announced change of your contact has been cancelled.'), null);
  const msgs = [
    { sender: 'zhangsan', text: '王五 将于 明天 接替 我 作为您的对接人', time_ms: 1_000 },
    { sender: 'system:handover', text: text.replace('王五', '赵六'), time_ms: 500 },
    { sender: 'system:handover', text, time_ms: 1_000 },
    { sender: 'system:handover', text: '已取消更换对接人。', time_ms: 1_000 },
  ];
  assert.equal(takeoverName(msgs, { created_ms: 1_000 }), '王五');
  assert.equal(takeoverName(msgs, { created_ms: 400 }), '赵六');
  assert.equal(takeoverName(msgs.slice(0, 1), { created_ms: 1_000 }), null);
});
