import { useEffect, useRef, useState } from 'preact/hooks';
import { fullTime } from '../i18n.ts';
import { call, get, query } from './api.ts';
import { type Checkpoint, type Linked, exportLines, fromHex, verifyChain } from './audit.ts';
import { Field, FlashLine, Section, errorText, saveBlob, useAction } from './common.tsx';
import { ct } from './strings.ts';

interface Page {
  records: Linked[];
  head: { seq: number; hash: string };
  base: { seq: number; hash: string };
}

const PAGE = 100;

function localToMs(v: string): number | undefined {
  if (!v) return undefined;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? t : undefined;
}

async function allRecords(onProgress: (n: number) => void): Promise<{ records: Linked[]; base: Page['base'] }> {
  const out: Linked[] = [];
  let after = 0;
  let base: Page['base'] | null = null;
  for (;;) {
    const p = await get<Page>(`/v1/audit${query({ after, limit: 10000 })}`);
    base ??= p.base;
    if (p.records.length === 0) break;
    out.push(...p.records);
    after = p.records[p.records.length - 1].record.seq;
    onProgress(out.length);
  }
  return { records: out, base: base ?? { seq: 0, hash: '00'.repeat(32) } };
}

async function allCheckpoints(): Promise<Checkpoint[]> {
  const out: Checkpoint[] = [];
  let after = 0;
  for (;;) {
    const v = await get<{ checkpoints: Checkpoint[] }>(`/v1/audit/checkpoints${query({ after, limit: 10000 })}`);
    if (v.checkpoints.length === 0) break;
    out.push(...v.checkpoints);
    after = v.checkpoints[v.checkpoints.length - 1].seq;
  }
  return out;
}

function Rows(props: { rows: Linked[] }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={ct('scrollTable')}>
      <table class="grid audit" data-testid="audit-table">
        <thead>
          <tr>
            <th scope="col" class="num">
              {ct('seq')}
            </th>
            <th scope="col">{ct('time')}</th>
            <th scope="col">{ct('actor')}</th>
            <th scope="col">{ct('action')}</th>
            <th scope="col">{ct('target')}</th>
            <th scope="col">{ct('outcome')}</th>
            <th scope="col">{ct('source')}</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map(({ record: r }) => (
            <tr key={r.seq} data-testid="audit-row" data-action={r.action} data-actor={r.origin.id}>
              <td class="num">{r.seq}</td>
              <td>
                <time dateTime={new Date(r.time_ms).toISOString()}>{fullTime(r.time_ms)}</time>
              </td>
              <td>
                {r.origin.kind}:{r.origin.id}
                {r.origin.role ? <span class="muted small"> ({r.origin.role})</span> : null}
              </td>
              <td>
                <code>{r.action}</code>
              </td>
              <td>{r.target}</td>
              <td class={r.outcome === 'ok' ? '' : 'bad'}>{r.outcome}</td>
              <td class="small">
                {r.origin.source}
                {r.origin.node ? <span class="muted"> @{r.origin.node}</span> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Audit() {
  const [rows, setRows] = useState<Linked[] | null>(null);
  const [head, setHead] = useState<number>(0);
  const [filters, setFilters] = useState({ actor: '', action: '', since: '', until: '' });
  const [searchMode, setSearchMode] = useState(false);
  const [tail, setTail] = useState(false);
  const [more, setMore] = useState(false);
  const act = useAction();
  const rowsRef = useRef<Linked[]>([]);
  rowsRef.current = rows ?? [];

  /** Newest first: the last PAGE records, then older pages on demand. */
  const loadRecent = async () => {
    const first = await get<Page>(`/v1/audit${query({ limit: 1 })}`);
    const h = first.head.seq;
    setHead(h);
    const after = Math.max(first.base.seq, h - PAGE);
    const p = await get<Page>(`/v1/audit${query({ after, limit: PAGE })}`);
    setRows(p.records.slice().reverse());
    setMore(after > first.base.seq);
  };
  const loadOlder = async () => {
    const oldest = rowsRef.current[rowsRef.current.length - 1]?.record.seq ?? 1;
    const after = Math.max(0, oldest - 1 - PAGE);
    const p = await get<Page>(`/v1/audit${query({ after, limit: oldest - 1 - after })}`);
    setRows([...rowsRef.current, ...p.records.slice().reverse()]);
    setMore(after > p.base.seq);
  };
  const filterQuery = (after: number) =>
    query({
      after,
      limit: PAGE,
      actor: filters.actor.trim(),
      action: filters.action.trim(),
      since_ms: localToMs(filters.since),
      until_ms: localToMs(filters.until),
    });
  /** Search: matching records in chain order, then more after the last. */
  const search = async (append: boolean) => {
    const after = append ? (rowsRef.current[rowsRef.current.length - 1]?.record.seq ?? 0) : 0;
    const p = await get<Page>(`/v1/audit${filterQuery(after)}`);
    setHead(p.head.seq);
    setRows(append ? [...rowsRef.current, ...p.records] : p.records);
    setMore(p.records.length === PAGE);
  };

  useEffect(() => {
    loadRecent().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);

  // Follow live: new records on top, every 3 s.
  useEffect(() => {
    if (!tail || searchMode) return;
    const timer = setInterval(async () => {
      try {
        const newest = rowsRef.current[0]?.record.seq ?? 0;
        const p = await get<Page>(`/v1/audit${query({ after: newest, limit: 1000 })}`);
        setHead(p.head.seq);
        if (p.records.length) setRows([...p.records.slice().reverse(), ...rowsRef.current]);
      } catch (e) {
        act.setFlash({ kind: 'error', text: errorText(e) });
      }
    }, 3000);
    return () => clearInterval(timer);
  }, [tail, searchMode]);

  const runExport = () =>
    act.run(async () => {
      // Close the export with a fresh signed checkpoint, as enclavectl does.
      const closing = await call<Checkpoint>('POST', '/v1/audit/checkpoint', {});
      const { records, base } = await allRecords((n) => act.setFlash({ kind: 'ok', text: ct('exporting', { n }) }));
      const kept = records.filter((r) => r.record.seq <= closing.seq);
      const cps = (await allCheckpoints()).filter((c) => c.seq <= closing.seq);
      if (!cps.some((c) => c.seq === closing.seq)) cps.push(closing);
      const blob = new Blob([exportLines(base, kept, cps)], { type: 'application/x-ndjson' });
      saveBlob(blob, `enclave-audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '')}.jsonl`);
      return ct('exported', { n: kept.length, seq: closing.seq, signer: closing.signer });
    });

  const runVerify = () =>
    act.run(async () => {
      const { records, base } = await allRecords((n) => act.setFlash({ kind: 'ok', text: ct('verifying', { n }) }));
      const result = await verifyChain(base.seq, fromHex(base.hash), records, (n) =>
        act.setFlash({ kind: 'ok', text: ct('verifying', { n }) }),
      );
      if (!result.ok) throw new Error(ct('verifyBroken', { seq: result.seq, reason: result.reason }));
      const bySeq = new Map(records.map((r) => [r.record.seq, r.hash]));
      const cps = (await allCheckpoints()).filter((c) => c.seq <= result.lastSeq && c.seq > base.seq);
      for (const c of cps) {
        if (bySeq.get(c.seq) !== c.hash) throw new Error(ct('verifyBroken', { seq: c.seq, reason: `checkpoint by ${c.signer} does not match the chain` }));
      }
      return ct('verifyOk', { n: result.records, seq: result.lastSeq, c: cps.length });
    });

  return (
    <div class="stack">
      <Section
        title={searchMode ? ct('auditSearch') : ct('auditRecent')}
        testid="audit"
        actions={
          <>
            <span class="muted small" data-testid="audit-head">
              {ct('chainHead', { seq: head })}
            </span>
            <button type="button" disabled={act.busy} data-testid="audit-verify" onClick={() => void runVerify()}>
              {ct('verifyChain')}
            </button>
            <button type="button" disabled={act.busy} data-testid="audit-export" onClick={() => void runExport()}>
              {ct('exportChain')}
            </button>
            <button
              type="button"
              disabled={act.busy}
              data-testid="audit-checkpoint"
              onClick={() =>
                void act.run(async () => {
                  const c = await call<Checkpoint>('POST', '/v1/audit/checkpoint', {});
                  return ct('checkpointMade', { signer: c.signer, seq: c.seq });
                })
              }
            >
              {ct('makeCheckpoint')}
            </button>
          </>
        }
      >
        <form
          class="filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            const any = Object.values(filters).some((v) => v.trim());
            setSearchMode(any);
            setTail(false);
            void act.run(async () => {
              if (any) await search(false);
              else await loadRecent();
            });
          }}
        >
          <Field label={ct('actor')}>
            <input value={filters.actor} data-testid="audit-actor" onInput={(e) => setFilters({ ...filters, actor: (e.target as HTMLInputElement).value })} />
          </Field>
          <Field label={ct('actionPrefix')}>
            <input value={filters.action} data-testid="audit-action" onInput={(e) => setFilters({ ...filters, action: (e.target as HTMLInputElement).value })} />
          </Field>
          <Field label={ct('since')}>
            <input type="datetime-local" value={filters.since} onInput={(e) => setFilters({ ...filters, since: (e.target as HTMLInputElement).value })} />
          </Field>
          <Field label={ct('until')}>
            <input type="datetime-local" value={filters.until} onInput={(e) => setFilters({ ...filters, until: (e.target as HTMLInputElement).value })} />
          </Field>
          <div class="row end">
            <button type="submit" class="primary" data-testid="audit-search">
              {ct('search')}
            </button>
            {!searchMode ? (
              <label class="check">
                <input type="checkbox" checked={tail} data-testid="audit-tail" onChange={(e) => setTail((e.target as HTMLInputElement).checked)} /> {ct('tail')}
              </label>
            ) : null}
          </div>
        </form>
        <FlashLine flash={act.flash} />
        {!rows ? <p class="muted">{ct('loading')}</p> : rows.length === 0 ? <p class="muted">{ct('noRecords')}</p> : <Rows rows={rows} />}
        {more ? (
          <button type="button" disabled={act.busy} onClick={() => void act.run(async () => (searchMode ? search(true) : loadOlder()))}>
            {searchMode ? ct('loadMore') : ct('loadOlder')}
          </button>
        ) : null}
      </Section>
    </div>
  );
}
