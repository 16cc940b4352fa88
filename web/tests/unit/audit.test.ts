import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainHash, exportLines, toHex, verifyChain, type AuditRecord, type Linked } from '../../src/console/audit.ts';

// The same record and expected hash as the Rust test
// `enclave_cluster::audit::tests::chain_hash_of_a_fixed_record_is_stable`.
const fixed: AuditRecord = {
  v: 1,
  seq: 300,
  time_ms: 1796280114521,
  origin: { kind: 'operator', id: '张三-ops', role: 'sysadmin', source: '10.0.0.7', node: 'node-1', request_id: 'r-1' },
  action: 'directory.member.create',
  target: 'lisi',
  outcome: 'ok',
};

test('the browser hashes a record exactly as the node does', async () => {
  const h = await chainHash(new Uint8Array(32).fill(7), fixed);
  assert.equal(toHex(h), '1f282b5ced624e26b635db50b90aeed90393e3170a4ef18c7f83dbf51d26c184');
});

async function chain(n: number): Promise<Linked[]> {
  let prev: Uint8Array = new Uint8Array(32);
  const out: Linked[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const record = { ...fixed, seq, target: `u${seq}` };
    prev = await chainHash(prev, record);
    out.push({ record, hash: toHex(prev) });
  }
  return out;
}

test('an intact chain verifies; an altered, missing or reordered record is named', async () => {
  const c = await chain(5);
  const ok = await verifyChain(0, new Uint8Array(32), c);
  assert.equal(ok.ok, true);
  if (ok.ok) assert.equal(ok.lastSeq, 5);

  const altered = c.map((l) => ({ record: { ...l.record }, hash: l.hash }));
  altered[2].record.outcome = 'refused:forbidden';
  assert.deepEqual(await verifyChain(0, new Uint8Array(32), altered), {
    ok: false,
    seq: 3,
    reason: 'hash does not match the record and its predecessor (altered)',
  });

  const missing = [c[0], c[1], c[3], c[4]];
  const r = await verifyChain(0, new Uint8Array(32), missing);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.seq, 3);
});

test('the export has the header, the records and checkpoints after their record', async () => {
  const c = await chain(2);
  const cp = { seq: 2, hash: c[1].hash, time_ms: 1, signer: 'n1', cert: '00', signature: '00' };
  const lines = exportLines({ seq: 0, hash: '00'.repeat(32) }, c, [cp]).trim().split('\n');
  assert.equal(lines.length, 4);
  assert.deepEqual(JSON.parse(lines[0]), { format: 'enclave-audit/1', prev_seq: 0, prev_hash: '00'.repeat(32) });
  assert.equal(JSON.parse(lines[2]).record.seq, 2);
  assert.deepEqual(JSON.parse(lines[3]), { checkpoint: cp });
});
