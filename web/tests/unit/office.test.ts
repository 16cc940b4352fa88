import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSafeLink, joinLines, parseInline, parseMarkup, textLength } from '../../src/logic/richtext.ts';
import { allowed, fieldOfError, submitValues, whyOf, type FieldDef } from '../../src/logic/approvals.ts';

const plain = (text: string) => ({ text, bold: false, link: null });
const bold = (text: string) => ({ text, bold: true, link: null });

test('paragraphs are separated by blank lines; lines of one paragraph are joined', () => {
  assert.deepEqual(parseMarkup('first line\nsecond line\n\n\n第二段\n继续'), [
    { paragraph: [plain('first line second line')] },
    { paragraph: [plain('第二段继续')] },
  ]);
  assert.equal(joinLines('中文', '接着'), '中文接着');
  assert.equal(joinLines('word', '中文'), 'word 中文');
  assert.deepEqual(parseMarkup('  \n\n'), []);
  assert.deepEqual(parseMarkup('a\r\n\r\nb'), [{ paragraph: [plain('a')] }, { paragraph: [plain('b')] }]);
});

test('bullet and numbered lists, with continuation lines', () => {
  const md = '通知如下：\n- 第一项\n- 第二项\n  接上一行\n1. 甲\n2) 乙\n3、丙\n\n结尾';
  assert.deepEqual(parseMarkup(md), [
    { paragraph: [plain('通知如下：')] },
    { bullets: [[plain('第一项')], [plain('第二项接上一行')]] },
    { numbered: [[plain('甲')], [plain('乙')], [plain('丙')]] },
    { paragraph: [plain('结尾')] },
  ]);
  // "3.14" and "2024年" are not list items; "* " is a bullet but "**bold**" is not.
  assert.deepEqual(parseMarkup('3.14 is pi'), [{ paragraph: [plain('3.14 is pi')] }]);
  assert.deepEqual(parseMarkup('* star item'), [{ bullets: [[plain('star item')]] }]);
  assert.deepEqual(parseMarkup('**粗体**开头'), [{ paragraph: [bold('粗体'), plain('开头')] }]);
  // an empty item is dropped (the server refuses empty runs)
  assert.deepEqual(parseMarkup('- \n- x'), [{ bullets: [[plain('x')]] }]);
});

test('bold and links inline; only http(s) links', () => {
  assert.deepEqual(parseInline('请 **务必** 阅读 [制度](https://intra.example/rules?a=1) 全文'), [
    plain('请 '),
    bold('务必'),
    plain(' 阅读 '),
    { text: '制度', bold: false, link: 'https://intra.example/rules?a=1' },
    plain(' 全文'),
  ]);
  assert.deepEqual(parseInline('**[bold link](http://x.example)**'), [{ text: 'bold link', bold: true, link: 'http://x.example' }]);
  // not a link (the address is not http): the brackets stay text, the bold still applies
  assert.deepEqual(parseInline('[see](**x**)'), [plain('[see]('), bold('x'), plain(')')]);
  // javascript:, data: and relative links stay text
  for (const bad of ['javascript:alert(1)', 'data:text/html,x', '/relative', 'ftp://x.example', 'https://']) {
    const runs = parseInline(`[x](${bad})`);
    assert.ok(runs.every((r) => r.link === null), bad);
    assert.equal(runs.map((r) => r.text).join(''), `[x](${bad})`);
  }
  // an unmatched ** is literal
  assert.deepEqual(parseInline('a ** b'), [plain('a ** b')]);
  assert.deepEqual(parseInline('**a** and **b'), [bold('a'), plain(' and **b')]);
  // control characters never reach the server
  assert.deepEqual(parseInline('a\u0007b\tc'), [plain('ab c')]);
});

test('safe links, as the server checks them', () => {
  assert.ok(isSafeLink('https://a.example/x'));
  assert.ok(isSafeLink('HTTP://A.EXAMPLE'));
  assert.ok(!isSafeLink('javascript:alert(1)'));
  assert.ok(!isSafeLink('https://a b'));
  assert.ok(!isSafeLink('http://'));
  assert.ok(!isSafeLink(null));
  assert.ok(!isSafeLink(`https://${'a'.repeat(2050)}`));
  assert.equal(textLength(parseMarkup('**ab** [cd](https://x.example)\n- 中文')), 7);
});

const fields: FieldDef[] = [
  { key: 'days', label: '天数', type: 'number', required: true, options: [] },
  { key: 'kind', label: '类型', type: 'choice', required: true, options: ['年假', '病假'] },
  { key: 'dates', label: '日期', type: 'date_range', required: true, options: [] },
  { key: 'amount', label: '金额', type: 'money', required: false, options: [] },
  { key: 'note', label: '备注', type: 'text', required: false, options: [] },
];

test('request values: typed as entered, empty ones left out, ranges as objects', () => {
  assert.deepEqual(
    submitValues(fields, { days: ' 2 ', kind: '年假', dates: { start: '2027-01-04', end: '2027-01-05' }, amount: '1,234.50', note: '' }),
    { days: '2', kind: '年假', dates: { start: '2027-01-04', end: '2027-01-05' }, amount: '1234.50' },
  );
  assert.deepEqual(submitValues(fields, { amount: 'abc', dates: { start: '', end: '' } }), { amount: 'abc' });
  assert.deepEqual(submitValues(fields, { dates: { start: '2027-01-04', end: '' } }), { dates: { start: '2027-01-04', end: '' } });
});

test('the field a server error names', () => {
  assert.equal(fieldOfError('field amount (金额, money): "abc" is not an amount like 1234.56 (at most two decimals)', fields), 'amount');
  assert.equal(fieldOfError('values.dates: a date range is {"start": …}', fields), 'dates');
  assert.equal(fieldOfError('field nope (x, text): bad', fields), null);
  assert.equal(fieldOfError('no approval template "x"', fields), null);
});

test('who may decide or withdraw', () => {
  const r = { applicant: 'wangwu', status: 'pending', approvers: [{ userid: 'lisi' }] };
  assert.deepEqual(allowed(r, 'lisi'), { decide: true, withdraw: false });
  assert.deepEqual(allowed(r, 'wangwu'), { decide: false, withdraw: true });
  assert.deepEqual(allowed(r, 'zhaoliu'), { decide: false, withdraw: false });
  assert.deepEqual(allowed({ ...r, status: 'approved' }, 'lisi'), { decide: false, withdraw: false });
  assert.deepEqual(allowed(r, null), { decide: false, withdraw: false });
});

test("the server's reasons for a skipped or moved step are recognised", () => {
  assert.deepEqual(whyOf("the applicant is this step's only approver"), { k: 'why_only_applicant' });
  assert.deepEqual(whyOf('no leader at level 2 above the applicant'), { k: 'why_no_leader', n: '2' });
  assert.deepEqual(whyOf('lisi, wangwu is no longer active and has no leader above'), { k: 'why_gone', who: 'lisi, wangwu' });
  assert.deepEqual(whyOf('department 7 was deleted'), { k: 'why_dept_deleted', id: '7' });
  assert.deepEqual(whyOf('an approver left'), { k: 'why_approver_left' });
  assert.equal(whyOf('something new'), null);
});
