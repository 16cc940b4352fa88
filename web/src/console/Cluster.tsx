import { useEffect, useState } from 'preact/hooks';
import { fullTime } from '../i18n.ts';
import { call, get } from './api.ts';
import { FlashLine, Section, bytes, errorText, useAction } from './common.tsx';
import { ct } from './strings.ts';

interface NodeStatus {
  name: string;
  state: string;
  term: number;
  last_log_index: number | null;
  committed_index: number | null;
  applied_index: number | null;
  store_bytes: number;
  snapshot_bytes?: number;
  cert_not_after?: string | null;
  leader_changes?: { at_ms: number; term: number; leader_name?: string | null }[];
}

interface MemberRow {
  name: string;
  voter: boolean;
  peer: string;
  admin: string;
  status?: NodeStatus;
  error?: string;
  lag?: number;
}

interface ClusterStatus {
  initialized: boolean;
  leader: string | null;
  term: number;
  members: MemberRow[];
  this_node: NodeStatus;
}

const DAY = 86400000;

function CertCell(props: { notAfter?: string | null }) {
  if (!props.notAfter) return <td>–</td>;
  const t = Date.parse(props.notAfter);
  const left = Math.floor((t - Date.now()) / DAY);
  const date = props.notAfter.slice(0, 10);
  if (left < 0)
    return (
      <td class="bad" data-testid="cert-expiry">
        {date} · {ct('expired')}
      </td>
    );
  if (left < 30)
    return (
      <td class="warn-cell" data-testid="cert-expiry">
        {date} · {ct('expiresSoon', { days: left })}
      </td>
    );
  return <td data-testid="cert-expiry">{date}</td>;
}

export function Cluster(props: { role: string }) {
  const [st, setSt] = useState<ClusterStatus | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [target, setTarget] = useState('');
  const act = useAction();
  const defrag = useAction();
  const load = async () => {
    try {
      setSt(await get<ClusterStatus>('/v1/cluster/status'));
      setErr(null);
    } catch (e) {
      setErr(errorText(e));
    }
  };
  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, 5000);
    return () => clearInterval(timer);
  }, []);
  const changes = [...(st?.this_node.leader_changes ?? [])].reverse();
  const voters = st?.members.filter((m) => m.voter && m.name !== st.leader) ?? [];
  const me = st?.this_node;
  // Only a follower may restart to defragment while the others serve (the
  // node refuses otherwise too: docs/operator/cluster.md).
  const canDefrag =
    !!st && props.role === 'sysadmin' && me?.state !== 'leader' && st.members.filter((m) => m.voter).length > 1;
  return (
    <div class="stack">
      <Section
        title={ct('members')}
        testid="cluster"
        actions={
          <>
            <span class="muted small">{ct('autoRefresh')}</span>
            <button type="button" onClick={() => void load()}>
              {ct('refresh')}
            </button>
          </>
        }
      >
        {err ? <p class="flash error">{err}</p> : null}
        {!st ? (
          <p class="muted">{ct('loading')}</p>
        ) : (
          <>
            <p data-testid="cluster-summary">
              <strong>{ct('leader')}:</strong> <span data-testid="cluster-leader">{st.leader ?? ct('noLeader')}</span> ·{' '}
              <strong>{ct('term')}:</strong> {st.term}
            </p>
            <div class="table-wrap" tabIndex={0} role="region" aria-label={ct('scrollTable')}>
              <table class="grid" data-testid="cluster-table">
                <thead>
                  <tr>
                    <th scope="col">{ct('node')}</th>
                    <th scope="col">{ct('membership')}</th>
                    <th scope="col">{ct('state')}</th>
                    <th scope="col" class="num">
                      {ct('term')}
                    </th>
                    <th scope="col" class="num">
                      {ct('lastLog')}
                    </th>
                    <th scope="col" class="num">
                      {ct('committed')}
                    </th>
                    <th scope="col" class="num">
                      {ct('applied')}
                    </th>
                    <th scope="col" class="num">
                      {ct('lag')}
                    </th>
                    <th scope="col">{ct('certExpires')}</th>
                    <th scope="col" class="num">
                      {ct('storeBytes')}
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {st.members.map((m) => (
                    <tr key={m.name} data-testid="cluster-row" data-node={m.name} data-state={m.status?.state ?? 'unreachable'}>
                      <th scope="row">
                        {m.name}
                        <div class="muted small">{m.peer}</div>
                      </th>
                      <td>{m.voter ? ct('voter') : ct('learner')}</td>
                      {m.status ? (
                        <>
                          <td>{m.status.state === 'leader' ? <span class="badge">{m.status.state}</span> : m.status.state}</td>
                          <td class="num">{m.status.term}</td>
                          <td class="num">{m.status.last_log_index ?? '–'}</td>
                          <td class="num">{m.status.committed_index ?? '–'}</td>
                          <td class="num">{m.status.applied_index ?? '–'}</td>
                          <td class={m.lag && m.lag > 1000 ? 'num warn-cell' : 'num'}>{m.lag ?? '–'}</td>
                          <CertCell notAfter={m.status.cert_not_after} />
                          <td class="num">{bytes(m.status.store_bytes)}</td>
                        </>
                      ) : (
                        <td colSpan={8} class="bad">
                          {ct('unreachable', { msg: m.error ?? '' })}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </Section>
      {st && props.role === 'sysadmin' && voters.length > 0 ? (
        <Section title={ct('transferLeader')}>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              const node = target || voters[0].name;
              void act.run(async () => {
                await call('POST', '/v1/cluster/transfer-leader', { node });
                await load();
                return ct('transferred', { node });
              });
            }}
          >
            <label>
              {ct('transferTo')}{' '}
              <select value={target || voters[0].name} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
                {voters.map((v) => (
                  <option key={v.name} value={v.name}>
                    {v.name}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit" disabled={act.busy}>
              {ct('transferLeader')}
            </button>
          </form>
          <FlashLine flash={act.flash} />
        </Section>
      ) : null}
      {canDefrag && me ? (
        <Section title={ct('defragTitle', { node: me.name })} testid="defrag">
          <p class="muted">
            {ct('defragHelp', {
              store: bytes(me.store_bytes),
              ratio: me.snapshot_bytes ? (me.store_bytes / me.snapshot_bytes).toFixed(1) : '–',
            })}
          </p>
          <button
            type="button"
            disabled={defrag.busy}
            onClick={() => {
              if (!window.confirm(ct('defragConfirm', { node: me.name }))) return;
              void defrag.run(async () => {
                await call('POST', '/v1/node/defrag');
                return ct('defragStarted', { node: me.name });
              });
            }}
          >
            {ct('defragButton')}
          </button>
          <FlashLine flash={defrag.flash} />
        </Section>
      ) : null}
      {st ? (
        <Section title={ct('leaderChanges')} testid="leader-changes">
          {changes.length === 0 ? (
            <p class="muted">{ct('noChanges')}</p>
          ) : (
            <ol class="plain">
              {changes.map((c) => (
                <li key={`${c.at_ms}-${c.term}`}>
                  <time>{fullTime(c.at_ms)}</time> · {ct('term')} {c.term} · {c.leader_name ?? ct('election')}
                </li>
              ))}
            </ol>
          )}
        </Section>
      ) : null}
    </div>
  );
}
