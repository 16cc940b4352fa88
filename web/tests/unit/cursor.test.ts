import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamCursor, streamUrl, tokenNumber } from '../../src/logic/cursor.ts';

const ev = (no: number, type = 'message') => ({ token: String(no), no, conversation: 'g1', time_ms: 1, actor: 'a', type });

test('events move the cursor; replays are duplicates', () => {
  const c = new StreamCursor('10');
  assert.equal(c.accept(ev(9)).kind, 'duplicate');
  assert.equal(c.accept(ev(10)).kind, 'duplicate');
  assert.equal(c.accept(ev(11)).kind, 'event');
  assert.equal(c.token, '11');
  assert.equal(c.accept(ev(11)).kind, 'duplicate');
  assert.equal(c.accept(ev(14)).kind, 'event');
  assert.equal(c.accept(ev(12)).kind, 'duplicate');
  assert.equal(c.token, '14');
});

test('synced and resync carry the token to resume from, never backwards', () => {
  const c = new StreamCursor(null);
  assert.equal(c.accept(ev(3)).kind, 'event');
  const s = c.accept({ type: 'synced', token: '7' });
  assert.deepEqual(s, { kind: 'synced', token: '7' });
  assert.equal(c.token, '7');
  // Events up to the synced token are covered.
  assert.equal(c.accept(ev(6)).kind, 'duplicate');
  const r = c.accept({ type: 'resync', token: '5' });
  assert.deepEqual(r, { kind: 'resync', token: '7' });
  assert.equal(c.accept({ type: 'resync', token: '9' }).kind, 'resync');
  assert.equal(c.token, '9');
});

test('a reconnect with the token then a replayed backlog shows each event once', () => {
  const c = new StreamCursor('0');
  const shown: number[] = [];
  const feed = (nos: number[]) => {
    for (const n of nos) {
      const r = c.accept(ev(n));
      if (r.kind === 'event') shown.push(r.event.no);
    }
  };
  feed([1, 2, 3]);
  // The connection drops; a node replays from the token (and maybe a bit before).
  feed([2, 3, 4, 5]);
  feed([5, 6]);
  assert.deepEqual(shown, [1, 2, 3, 4, 5, 6]);
});

test('invalid frames are ignored', () => {
  const c = new StreamCursor('1');
  assert.equal(c.accept(null).kind, 'invalid');
  assert.equal(c.accept({ type: 'synced', token: 'x' }).kind, 'invalid');
  assert.equal(c.accept({ type: 'message' }).kind, 'invalid');
  assert.equal(c.token, '1');
  assert.equal(tokenNumber('42'), 42);
  assert.equal(tokenNumber('-1'), null);
});

test('stream URLs', () => {
  assert.equal(streamUrl('https://127.0.0.1:8443', '12', 'eat_x'), 'wss://127.0.0.1:8443/v1/stream?since=12&access_token=eat_x');
  assert.equal(streamUrl('http://localhost:4173', null, 't'), 'ws://localhost:4173/v1/stream?access_token=t');
});
