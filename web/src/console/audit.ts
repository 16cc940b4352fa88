// The audit chain in the browser: the canonical encoding of a record (the
// same bytes the node hashes: postcard of `enclave_cluster::audit::Record`)
// and verification of every hash link with the browser's SHA-256. An
// auditor can check the chain without trusting the page's server for the
// arithmetic; checkpoint signatures are checked by `enclavectl audit
// verify`, which holds the CA certificate.

export interface Origin {
  kind: 'user' | 'operator' | 'system' | 'app';
  id: string;
  role: string;
  source: string;
  node: string;
  request_id: string;
}

export interface AuditRecord {
  v: number;
  seq: number;
  time_ms: number;
  origin: Origin;
  action: string;
  target: string;
  outcome: string;
}

export interface Linked {
  record: AuditRecord;
  hash: string;
}

export interface Checkpoint {
  seq: number;
  hash: string;
  time_ms: number;
  signer: string;
  cert: string;
  signature: string;
}

const KINDS = ['user', 'operator', 'system', 'app'] as const;
const utf8 = new TextEncoder();

function varint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not an unsigned integer: ${n}`);
  let v = BigInt(n);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

function str(out: number[], s: string): void {
  const b = utf8.encode(s);
  varint(out, b.length);
  for (const x of b) out.push(x);
}

/** postcard bytes of a record (field order of the Rust struct). */
export function canonical(r: AuditRecord): Uint8Array {
  const out: number[] = [];
  if (!Number.isInteger(r.v) || r.v < 0 || r.v > 255) throw new Error(`record ${r.seq}: bad version ${r.v}`);
  out.push(r.v); // u8: one byte
  varint(out, r.seq);
  varint(out, r.time_ms);
  const kind = KINDS.indexOf(r.origin.kind);
  if (kind < 0) throw new Error(`record ${r.seq}: unknown actor kind ${r.origin.kind}`);
  varint(out, kind);
  str(out, r.origin.id);
  str(out, r.origin.role);
  str(out, r.origin.source);
  str(out, r.origin.node);
  str(out, r.origin.request_id);
  str(out, r.action);
  str(out, r.target);
  str(out, r.outcome);
  return new Uint8Array(out);
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(h: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(h)) throw new Error('not hex');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** SHA-256(prev ‖ canonical(r)). */
export async function chainHash(prev: Uint8Array, r: AuditRecord): Promise<Uint8Array> {
  const body = canonical(r);
  const buf = new Uint8Array(prev.length + body.length);
  buf.set(prev, 0);
  buf.set(body, prev.length);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

export type VerifyResult =
  | { ok: true; records: number; lastSeq: number; head: string }
  | { ok: false; seq: number; reason: string };

/**
 * Verify consecutive records after (`prevSeq`, `prevHash`): the first
 * record that is missing, out of order or altered is reported exactly.
 */
export async function verifyChain(
  prevSeq: number,
  prevHash: Uint8Array,
  records: Linked[],
  progress?: (done: number) => void,
): Promise<VerifyResult> {
  let seq = prevSeq;
  let prev = prevHash;
  let i = 0;
  for (const l of records) {
    const expected = seq + 1;
    if (l.record.seq !== expected) {
      return { ok: false, seq: expected, reason: `expected record ${expected}, found ${l.record.seq} (missing or reordered records)` };
    }
    let h: Uint8Array;
    try {
      h = await chainHash(prev, l.record);
    } catch (e) {
      return { ok: false, seq: expected, reason: e instanceof Error ? e.message : String(e) };
    }
    if (toHex(h) !== l.hash) {
      return { ok: false, seq: expected, reason: 'hash does not match the record and its predecessor (altered)' };
    }
    seq = expected;
    prev = h;
    if (progress && ++i % 500 === 0) progress(i);
  }
  return { ok: true, records: records.length, lastSeq: seq, head: toHex(prev) };
}

/** The export file `enclavectl audit export` writes (and `verify` reads). */
export const EXPORT_FORMAT = 'enclave-audit/1';

export function exportLines(base: { seq: number; hash: string }, records: Linked[], checkpoints: Checkpoint[]): string {
  const lines = [JSON.stringify({ format: EXPORT_FORMAT, prev_seq: base.seq, prev_hash: base.hash })];
  const bySeq = new Map<number, Checkpoint[]>();
  for (const c of checkpoints) {
    const list = bySeq.get(c.seq) ?? [];
    list.push(c);
    bySeq.set(c.seq, list);
  }
  for (const r of records) {
    lines.push(JSON.stringify(r));
    for (const c of bySeq.get(r.record.seq) ?? []) lines.push(JSON.stringify({ checkpoint: c }));
  }
  return lines.join('\n') + '\n';
}
