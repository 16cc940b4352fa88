import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeightIndex } from '../../src/logic/virtual.ts';

test('offsets from estimates and measurements', () => {
  const h = new HeightIndex(50);
  h.setKeys(['a', 'b', 'c', 'd']);
  assert.equal(h.total, 200);
  assert.equal(h.measure('b', 100), true);
  assert.equal(h.measure('b', 100), false);
  assert.equal(h.offset(2), 150);
  assert.equal(h.total, 250);
  assert.equal(h.indexAt(0), 0);
  assert.equal(h.indexAt(60), 1);
  assert.equal(h.indexAt(149), 1);
  assert.equal(h.indexAt(150), 2);
  assert.equal(h.indexAt(10_000), 3);
});

test('only rows near the viewport are rendered, even for 5,000 rows', () => {
  const h = new HeightIndex(60);
  h.setKeys(Array.from({ length: 5000 }, (_, i) => i));
  const r = h.range(60 * 2500, 600, 300);
  assert.ok(r.end - r.start <= 22, `rendered ${r.end - r.start} rows`);
  assert.ok(r.start <= 2495 && r.end >= 2510);
  const bottom = h.range(h.total - 600, 600, 300);
  assert.equal(bottom.end, 5000);
  assert.deepEqual(new HeightIndex(10).range(0, 100, 0), { start: 0, end: 0 });
});
