import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SAMPLE, dayRange, dayStart, parseTemplate, safeLink, templateJson, trailDetail, type Template } from '../../src/console/office.ts';

test('only http and https addresses become links', () => {
  assert.equal(safeLink('https://intra.example/a?b=1'), 'https://intra.example/a?b=1');
  assert.equal(safeLink('HTTP://intra.example'), 'HTTP://intra.example');
  for (const bad of ['javascript:alert(1)', 'data:text/html,x', '//evil.example', 'https://', 'https://a b', 'https://a\nb', ' https://a', 42, null, undefined]) {
    assert.equal(safeLink(bad), null, String(bad));
  }
  assert.equal(safeLink(`https://a.example/${'x'.repeat(2100)}`), null);
});

test('export dates are local days, both ends included', () => {
  assert.equal(dayStart('2026-01-05'), new Date(2026, 0, 5).getTime());
  assert.equal(dayStart(''), undefined);
  assert.equal(dayStart('5.1.2026'), undefined);
  assert.deepEqual(dayRange('2026-01-05', '2026-01-05'), { from_ms: new Date(2026, 0, 5).getTime(), to_ms: new Date(2026, 0, 6).getTime() - 1 });
  // The last day of a month rolls over to the next month's first midnight.
  assert.equal(dayRange('', '2026-02-28').to_ms, new Date(2026, 2, 1).getTime() - 1);
  assert.deepEqual(dayRange('', ''), { from_ms: undefined });
  assert.deepEqual(dayRange('2026-01-05', ''), { from_ms: new Date(2026, 0, 5).getTime() });
});

test('the editor shows a template as the body PUT takes back', () => {
  const t: Template = {
    id: 'leave',
    name: '请假',
    fields: [
      { key: 'days', label: '天数', type: 'number', required: true, options: [] },
      { key: 'kind', label: '类型', type: 'choice', required: false, options: ['年假', '病假'] },
    ],
    flow: [{ leaders: 1 }, { user: 'wangwu' }, { any_of: ['a', 'b'] }],
    cc: ['zhaoliu'],
    disabled: true,
    version: 3,
  };
  const text = templateJson(t);
  const p = parseTemplate(text);
  if (!('body' in p)) throw new Error(`not parsed: ${JSON.stringify(p)}`);
  assert.deepEqual(p.body, {
    name: '请假',
    fields: [
      { key: 'days', label: '天数', type: 'number', required: true },
      { key: 'kind', label: '类型', type: 'choice', required: false, options: ['年假', '病假'] },
    ],
    flow: [{ leaders: 1 }, { user: 'wangwu' }, { any_of: ['a', 'b'] }],
    cc: ['zhaoliu'],
  });
  // No id, version or state in the body: the id is in the path, the rest is the server's.
  assert.ok(!/"(id|version|disabled)"/.test(text));
  assert.ok('body' in parseTemplate(templateJson(SAMPLE)));
});

test('only the JSON syntax is checked before the server sees it', () => {
  const bad = parseTemplate('{"name": "x",');
  assert.equal('error' in bad && bad.error, 'json');
  for (const v of ['[]', '"x"', '1', 'null']) assert.deepEqual(parseTemplate(v), { error: 'object' }, v);
  // An unknown field type goes through: the server names it.
  const p = parseTemplate('{"name": "x", "fields": [{"key": "a", "label": "A", "type": "file"}], "flow": []}');
  assert.ok('body' in p);
});

test('a trail entry in one line', () => {
  const base = { time_ms: 1, actor: 'lisi', step: 1 };
  assert.equal(trailDetail({ ...base, action: 'approved', comment: '同意' }), '同意');
  assert.equal(trailDetail({ ...base, action: 'approved', comment: '' }), '');
  assert.equal(trailDetail({ ...base, action: 'rejected', reason: '预算不足' }), '预算不足');
  assert.equal(trailDetail({ ...base, action: 'assigned', approvers: ['lisi', 'wangwu'] }), 'lisi, wangwu');
  assert.equal(
    trailDetail({ ...base, action: 'reassigned', from: ['lisi'], to: ['wangwu'], why: 'leader changed' }),
    'leader changed · lisi → wangwu',
  );
  assert.equal(trailDetail({ ...base, action: 'submitted' }), '');
});
