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
