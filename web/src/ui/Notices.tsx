// Urgent notices (紧急通知): the list (received, and sent for members who
// may send), a notice's page (acknowledge; for the sender: live counts,
// who has not acknowledged, withdraw), the composer, and the dialog that
// asks for an acknowledgement when a notice or a reminder arrives.
import { useEffect, useRef, useState } from 'preact/hooks';
import { fullTime, shortTime, t } from '../i18n.ts';
import { href, go } from '../router.ts';
import type { Department, Member } from '../api.ts';
import { needsAck, type NoticeItem, type RecipientRow } from '../notices.ts';
import { Dialog } from './Dialog.tsx';
import { MemberPicker } from './MemberPicker.tsx';
import { useStore } from './hooks.ts';

function phaseName(p: string | undefined): string {
  switch (p) {
    case 'sending':
      return t('phase_sending');
    case 'waiting':
      return t('phase_waiting');
    case 'reminding':
      return t('phase_reminding');
    case 'escalating':
      return t('phase_escalating');
    case 'withdrawing':
      return t('phase_withdrawing');
    default:
      return t('phase_done');
  }
}

function State({ n }: { n: NoticeItem }) {
  if (n.withdrawn) return <span class="tag">{t('withdrawnTag')}</span>;
  if (n.my?.acked_ms) return <span class="tag ok">{t('acked')}</span>;
  if (n.my) return <span class="tag warn">{t('notAcked')}</span>;
  return null;
}

export function NoticeList({ selected }: { selected: number | null }) {
  const store = useStore();
  const u = store.urgent;
  const received = [...u.inbox.values()].sort((a, b) => b.id - a.id);
  const sent = [...u.sent.values()].sort((a, b) => b.id - a.id);
  const row = (n: NoticeItem, mine: boolean) => (
    <li key={`${mine ? 's' : 'r'}${n.id}`}>
      <a
        href={href({ name: 'notice', id: n.id })}
        class={selected === n.id ? 'conv-item active' : 'conv-item'}
        aria-current={selected === n.id ? 'true' : undefined}
        data-testid={mine ? 'sent-notice' : 'notice-item'}
        data-id={n.id}
        data-acked={n.my?.acked_ms ? 'true' : 'false'}
      >
        <span class="conv-main">
          <span class="conv-top">
            <span class="conv-title">{n.title}</span>
            <time class="conv-time">{shortTime(n.sent_ms)}</time>
          </span>
          <span class="conv-bottom">
            <span class="conv-preview">
              {mine && n.counts
                ? `${t('countAcked')} ${n.counts.acked}/${n.counts.recipients}`
                : t('fromSender', { name: store.name(n.sender) })}
            </span>
            {mine ? n.withdrawn ? <span class="tag">{t('withdrawnTag')}</span> : null : <State n={n} />}
          </span>
        </span>
      </a>
    </li>
  );
  return (
    <div class="pane">
      <div class="pane-head">
        <h2 class="pane-title">{t('urgentNotice')}</h2>
        {u.canSend && (
          <a class="button primary small" href={href({ name: 'notice-new' })} data-testid="notice-new">
            {t('newNotice')}
          </a>
        )}
      </div>
      {[...u.escalations.values()].map((e) => (
        <p class="notice-escalation" key={`e${e.id}`} data-testid="notice-escalation">
          <strong>{e.title}</strong>: {t('escalatedToYou', { n: e.count })}
          {e.sample.length ? ` (${e.sample.map((x) => store.name(x)).join('、')})` : ''}
        </p>
      ))}
      <h3 class="pane-sub">{t('received')}</h3>
      {received.length === 0 ? (
        <p class="empty">{t('noNotices')}</p>
      ) : (
        <ul class="conv-list" aria-label={t('received')} data-testid="notice-list">
          {received.map((n) => row(n, false))}
        </ul>
      )}
      {u.canSend && (
        <>
          <h3 class="pane-sub">{t('sentByMe')}</h3>
          <ul class="conv-list" aria-label={t('sentByMe')} data-testid="sent-list">
            {sent.map((n) => row(n, true))}
          </ul>
        </>
      )}
    </div>
  );
}

export function NoticePage({ id }: { id: number }) {
  const store = useStore();
  const u = store.urgent;
  const mine = u.sent.get(id);
  const got = u.inbox.get(id);
  const [error, setError] = useState<string | null>(null);
  const [unacked, setUnacked] = useState<RecipientRow[] | null>(null);
  useEffect(() => {
    if (got && !got.withdrawn) u.read(id).catch(() => {});
    if (mine) u.refresh(id).catch(() => {});
  }, [id]);
  const run = (fn: () => Promise<void>) => {
    setError(null);
    fn().catch((e) => setError(t('error', { msg: e instanceof Error ? e.message : String(e) })));
  };
  const n = mine ?? got;
  if (!n) return <div class="empty-main"><p>{t('loading')}</p></div>;
  const c = mine?.counts;
  return (
    <article class="notice-page" data-testid="notice-page" data-id={id} aria-labelledby="notice-title">
      <header class="pane-head">
        <h2 id="notice-title" class="pane-title">
          {n.title}
        </h2>
        {got && <State n={got} />}
      </header>
      <p class="muted">
        {t('fromSender', { name: store.name(n.sender) })} · {fullTime(n.sent_ms)} ·{' '}
        {t('deadline', { time: fullTime(n.deadline_ms) })}
      </p>
      <p class="notice-body" data-testid="notice-body">
        {n.body}
      </p>
      {got && needsAck(got) && (
        <button type="button" class="primary" data-testid="notice-ack" onClick={() => run(() => u.ack(id))}>
          {t('ack')}
        </button>
      )}
      {c && (
        <section aria-label={t('sentByMe')}>
          <p class="muted" data-testid="notice-phase">
            {phaseName(mine?.phase)}
          </p>
          <dl class="counts" data-testid="notice-counts">
            {(
              [
                ['countRecipients', c.recipients, 'recipients'],
                ['countDelivered', c.delivered, 'delivered'],
                ['countRead', c.read, 'read'],
                ['countAcked', c.acked, 'acked'],
                ['countReminded', c.reminded, 'reminded'],
                ['countEscalated', c.escalated, 'escalated'],
              ] as const
            ).map(([k, v, key]) => (
              <div key={key}>
                <dt>{t(k)}</dt>
                <dd data-count={key}>{v}</dd>
              </div>
            ))}
          </dl>
          <div class="form-actions">
            <button
              type="button"
              data-testid="notice-unacked"
              onClick={() => run(async () => setUnacked((await u.recipients(id, 'unacked')).recipients))}
            >
              {t('showUnacked')}
            </button>
            {!mine?.withdrawn && (
              <button
                type="button"
                class="danger"
                data-testid="notice-withdraw"
                onClick={() => {
                  if (confirm(t('confirmWithdraw'))) run(() => u.withdraw(id));
                }}
              >
                {t('withdrawNotice')}
              </button>
            )}
          </div>
          {unacked && (
            <ul class="plain-list" data-testid="unacked-list" aria-label={t('showUnacked')}>
              {unacked.map((r) => (
                <li key={r.userid} data-userid={r.userid}>
                  {r.name || r.userid}
                  {r.reminded ? <span class="muted"> · {t('reminderN', { n: r.reminded })}</span> : null}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </article>
  );
}

export function NoticeCompose() {
  const store = useStore();
  const [depts, setDepts] = useState<Department[]>([]);
  const [f, setF] = useState({ title: '', body: '', all: false, minutes: '30', every: '5', rounds: '6' });
  const [people, setPeople] = useState<Member[]>([]);
  const [chosen, setChosen] = useState<number[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // One key per composed notice: a retry after a failover sends it once.
  const key = useRef(`n-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`);
  useEffect(() => {
    store.api.departments().then((d) => setDepts(d.departments), () => {});
  }, []);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const n = await store.urgent.send(
        {
          users: people.map((m) => m.userid),
          departments: chosen,
          all: f.all,
          title: f.title.trim(),
          body: f.body,
          deadline_ms: Date.now() + Math.round(Number(f.minutes) * 60000),
          remind_every_ms: Math.round(Number(f.every) * 60000),
          max_rounds: Number(f.rounds) || 0,
        },
        key.current,
      );
      go({ name: 'notice', id: n.id });
    } catch (err) {
      setError(t('error', { msg: err instanceof Error ? err.message : String(err) }));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="notice-compose" onSubmit={submit} data-testid="notice-compose" aria-labelledby="compose-title">
      <h2 id="compose-title" class="pane-title">
        {t('newNotice')}
      </h2>
      <div class="field">
        <label for="nt-title">{t('noticeTitle')}</label>
        <input id="nt-title" required maxLength={128} value={f.title} onInput={set('title')} data-testid="nt-title" />
      </div>
      <div class="field">
        <label for="nt-body">{t('noticeBody')}</label>
        <textarea id="nt-body" required rows={4} value={f.body} onInput={set('body')} data-testid="nt-body" />
      </div>
      <fieldset class="field">
        <legend>{t('noticeTo')}</legend>
        <label>
          <input type="checkbox" checked={f.all} onChange={(e) => setF({ ...f, all: (e.target as HTMLInputElement).checked })} />{' '}
          {t('everyone')}
        </label>
        {!f.all && (
          <>
            <div class="dept-checks" role="group" aria-label={t('noticeDepts')}>
              {depts.map((d) => (
                <label key={d.id}>
                  <input
                    type="checkbox"
                    checked={chosen.includes(d.id)}
                    onChange={(e) =>
                      setChosen((e.target as HTMLInputElement).checked ? [...chosen, d.id] : chosen.filter((x) => x !== d.id))
                    }
                  />{' '}
                  {d.name}
                </label>
              ))}
            </div>
            <div class="field" data-testid="nt-users">
              <span>{t('noticeUsers')}</span>
              <MemberPicker store={store} selected={people} onChange={setPeople} exclude={new Set(store.me ? [store.me.userid] : [])} idPrefix="nt" />
            </div>
          </>
        )}
      </fieldset>
      <div class="field-row">
        <div class="field">
          <label for="nt-deadline">{t('deadlineMinutes')}</label>
          <input id="nt-deadline" type="number" min="1" step="any" value={f.minutes} onInput={set('minutes')} data-testid="nt-deadline" />
        </div>
        <div class="field">
          <label for="nt-every">{t('remindMinutes')}</label>
          <input id="nt-every" type="number" min="0.17" step="any" value={f.every} onInput={set('every')} data-testid="nt-every" />
        </div>
        <div class="field">
          <label for="nt-rounds">{t('maxRounds')}</label>
          <input id="nt-rounds" type="number" min="1" max="50" value={f.rounds} onInput={set('rounds')} />
        </div>
      </div>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy} data-testid="nt-send">
          {busy ? t('sendingNotice') : t('send')}
        </button>
      </div>
    </form>
  );
}

/** Asks for an acknowledgement when a notice or a reminder arrives. */
export function UrgentDialog() {
  const store = useStore();
  const u = store.urgent;
  const id = u.popup;
  const n = id !== null ? u.inbox.get(id) : undefined;
  const [error, setError] = useState<string | null>(null);
  if (!n || !needsAck(n)) return null;
  return (
    <Dialog title={t('urgentNotice')} onClose={() => u.dismiss()} testid="urgent-dialog">
      <h3 data-testid="urgent-title">{n.title}</h3>
      <p class="muted">
        {t('fromSender', { name: store.name(n.sender) })} · {t('deadline', { time: fullTime(n.deadline_ms) })}
        {n.my?.reminded ? ` · ${t('reminderN', { n: n.my.reminded })}` : ''}
      </p>
      <p class="notice-body">{n.body}</p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div class="form-actions">
        <button type="button" onClick={() => u.dismiss()} data-testid="urgent-later">
          {t('later')}
        </button>
        <button
          type="button"
          class="primary"
          data-testid="urgent-ack"
          onClick={() =>
            u.ack(n.id).catch((e) => setError(t('error', { msg: e instanceof Error ? e.message : String(e) })))
          }
        >
          {t('ack')}
        </button>
      </div>
    </Dialog>
  );
}
