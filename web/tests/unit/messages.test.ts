import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessageLog, filterMembers, insertMention, latestPage, mentionQuery, mentionsInText, olderPage, receiptCounts,
  type Message,
} from '../../src/logic/messages.ts';

const msg = (seq: number, text = `m${seq}`): Message => ({
  conversation: 'g1', seq, sender: 'a', time_ms: seq, text, mentions: [], mention_all: false,
  reply_to: null, recalled: false, event: 100 + seq, safe: false,
});
const seqs = (l: MessageLog) => l.all().map((m) => m.seq);

test('pages and live messages merge into one gap-free run, each message once', () => {
  const l = new MessageLog();
  assert.equal(l.applyLive(msg(5)), 'ignored'); // not loaded yet
  l.mergePage([msg(4), msg(5), msg(6)]);
  assert.deepEqual(seqs(l), [4, 5, 6]);
  assert.equal(l.applyLive(msg(7)), 'appended');
  assert.equal(l.applyLive(msg(7)), 'updated');
  assert.equal(l.applyLive(msg(6)), 'updated');
  assert.equal(l.applyLive(msg(9)), 'gap');
  assert.deepEqual(seqs(l), [4, 5, 6, 7]);
  l.mergePage([msg(7), msg(8), msg(9)]); // the gap's page
  l.mergePage([msg(1), msg(2), msg(3), msg(4)]); // an older page, overlapping
  assert.deepEqual(seqs(l), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(l.hasOlder, false);
});

test('a page not contiguous with the loaded run is not kept (no holes)', () => {
  const l = new MessageLog();
  l.mergePage([msg(10), msg(11)]);
  l.mergePage([msg(3), msg(4)]);
  assert.deepEqual(seqs(l), [10, 11]);
  assert.equal(l.hasOlder, true);
});

test('a recall is final: a stale copy does not bring the text back', () => {
  const l = new MessageLog();
  l.mergePage([msg(1, 'hello'), msg(2)]);
  assert.equal(l.recall(1), true);
  assert.equal(l.get(1)!.text, '');
  l.mergePage([msg(1, 'hello')]);
  l.applyLive(msg(1, 'hello'));
  assert.equal(l.get(1)!.recalled, true);
  assert.equal(l.get(1)!.text, '');
  assert.equal(l.recall(1), false);
});

test('a recalled attachment is gone: no file to show or fetch, even from a stale copy', () => {
  const file = {
    id: 'f01', name: 'a.png', size: 10, mime: 'image/png', kind: 'image' as const, sha256: '00',
    width: 2, height: 2, thumbnail: true, created_ms: 1, uploader: 'a',
  };
  const l = new MessageLog();
  l.mergePage([{ ...msg(1, ''), file }]);
  assert.equal(l.get(1)!.file?.id, 'f01');
  l.recall(1);
  assert.equal(l.get(1)!.file, null);
  l.mergePage([{ ...msg(1, ''), file }]);
  assert.equal(l.get(1)!.file, null);
});

test('paging arithmetic: after_seq pages backwards', () => {
  assert.deepEqual(latestPage(120, 50), { after_seq: 70, limit: 50 });
  assert.deepEqual(latestPage(20, 50), { after_seq: 0, limit: 20 });
  assert.deepEqual(olderPage(71, 50), { after_seq: 20, limit: 50 });
  assert.deepEqual(olderPage(21, 50), { after_seq: 0, limit: 20 });
  assert.equal(olderPage(1, 50), null);
});

test('receipt counts from read markers exclude the sender', () => {
  const r = new Map([['a', 5], ['b', 5], ['c', 3], ['d', 0]]);
  assert.deepEqual(receiptCounts(4, 'a', r), { read: 1, unread: 2 });
  assert.deepEqual(receiptCounts(3, 'a', r), { read: 2, unread: 1 });
});

test('mention query, insertion and extraction', () => {
  assert.deepEqual(mentionQuery('hi @li', 6), { start: 3, query: 'li' });
  assert.deepEqual(mentionQuery('@', 1), { start: 0, query: '' });
  assert.equal(mentionQuery('mail a@b', 8), null); // not after a space
  assert.equal(mentionQuery('@li si', 6), null); // a space ends it
  const r = insertMention('hi @li there', 3, 6, '李四');
  assert.deepEqual(r, { text: 'hi @李四  there', caret: 7 });
  const picked = [{ userid: 'lisi', name: '李四' }, { userid: 'wangwu', name: '王五' }];
  assert.deepEqual(mentionsInText('@李四 看一下', picked), ['lisi']);
  const members = [{ userid: 'lisi', name: '李四' }, { userid: 'wangwu', name: '王五' }, { userid: 'zhaoliu', name: '赵六' }];
  assert.deepEqual(filterMembers(members, 'li').map((m) => m.userid), ['lisi', 'zhaoliu']);
  assert.deepEqual(filterMembers(members, '王').map((m) => m.userid), ['wangwu']);
});
