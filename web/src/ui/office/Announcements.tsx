// Announcements (公告): the list (pinned first, unread marked; what I
// published), an announcement's page (rich body, attachment; for its
// sender: read statistics, who has and has not read it, CSV export,
// withdraw) and the composer.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, type Department } from '../../api.ts';
import { fullTime, shortTime } from '../../i18n.ts';
import { go, href } from '../../router.ts';
import { errorText } from '../../state.ts';
import type { Announcement, Reader, ReaderState } from '../../office.ts';
import {
  announcementOrder, loadSent, markRead, markWithdrawn, openAnnouncement, publish, readers as readersOf, readersCsv,
  withdrawAnnouncement,
} from './actions.ts';
import { isSafeLink, parseMarkup, textLength } from '../../logic/richtext.ts';
import { useNarrow, useStore } from '../hooks.ts';
import { RichText } from './RichText.tsx';
import { ot } from './strings.ts';

let deptCache: Promise<Department[]> | null = null;
function useDepartments(): Department[] | null {
  const store = useStore();
  const [d, setD] = useState<Department[] | null>(null);
  useEffect(() => {
    if (!deptCache) {
      deptCache = store.api.departments().then(
        (r) => r.departments,
        (e) => {
          deptCache = null;
          throw e;
        },
      );
    }
    deptCache.then(setD, () => setD([]));
  }, []);
  return d;
}

export function Back({ to }: { to: 'announcements' | 'approvals' }) {
  const narrow = useNarrow();
  if (!narrow) return null;
  return (
    <button type="button" class="icon-btn" aria-label={ot('back')} onClick={() => go({ name: to })}>
      ‹
    </button>
  );
}

function Tags({ a }: { a: Announcement }) {
  return (
    <>
      {a.withdrawn && <span class="tag">{ot('withdrawnTag')}</span>}
      {a.sending && !a.withdrawn && <span class="tag">{ot('sendingTag')}</span>}
      {a.late && <span class="tag">{ot('lateTag')}</span>}
    </>
  );
}

export function AnnouncementList({ selected }: { selected: number | null }) {
  const store = useStore();
  const o = store.office;
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    o.loadInbox().catch((e) => setError(errorText(e)));
    if (o.canPublish) loadSent(o).catch(() => {});
  }, []);
  const { pinned, rest } = announcementOrder(o.inbox.values());
  const sent = [...o.sent.values()].sort((a, b) => b.id - a.id);
  const row = (a: Announcement, mine: boolean) => {
    const unread = !mine && !a.read_ms && !a.withdrawn;
    return (
      <li key={`${mine ? 's' : 'i'}${a.id}`}>
        <a
          href={href({ name: 'announcement', id: a.id })}
          class={selected === a.id ? 'conv-item active' : 'conv-item'}
          aria-current={selected === a.id ? 'true' : undefined}
          data-testid={mine ? 'ann-sent' : 'ann-item'}
          data-id={a.id}
          data-unread={unread ? 'true' : 'false'}
        >
          <span class="conv-main">
            <span class="conv-top">
              <span class="conv-title">
                {unread && (
                  <span class="unread-dot" data-testid="ann-unread-dot">
                    <span class="sr-only">{ot('unread')}</span>
                  </span>
                )}
                {a.title}
              </span>
              <time class="conv-time">{shortTime(a.sent_ms)}</time>
            </span>
            <span class="conv-bottom">
              <span class="conv-preview">
                {mine && a.counts
                  ? ot('readOf', { read: a.counts.read, audience: a.counts.audience })
                  : a.sender_name || store.name(a.sender)}
              </span>
              <Tags a={a} />
            </span>
          </span>
        </a>
      </li>
    );
  };
  return (
    <div class="pane">
      <div class="pane-head">
        <h2 class="pane-title">{ot('announcements')}</h2>
        {o.canPublish && (
          <a class="button primary small" href={href({ name: 'announcement-new' })} data-testid="ann-new">
            {ot('newAnnouncement')}
          </a>
        )}
      </div>
      {error && (
        <p class="form-error pad" role="alert">
          {ot('error', { msg: error })}
        </p>
      )}
      {pinned.length > 0 && (
        <>
          <h3 class="pane-sub" id="ann-pinned-h">
            {ot('pinnedHeading')}
          </h3>
          <ul class="conv-list" aria-labelledby="ann-pinned-h" data-testid="ann-pinned">
            {pinned.map((a) => row(a, false))}
          </ul>
        </>
      )}
      {pinned.length > 0 && rest.length > 0 && (
        <h3 class="pane-sub" id="ann-rest-h">
          {ot('otherHeading')}
        </h3>
      )}
      {pinned.length + rest.length === 0 ? (
        !(o.canPublish && sent.length) && <p class="empty">{ot('noAnnouncements')}</p>
      ) : (
        rest.length > 0 && (
          <ul
            class="conv-list"
            aria-labelledby={pinned.length ? 'ann-rest-h' : undefined}
            aria-label={pinned.length ? undefined : ot('announcements')}
            data-testid="ann-list"
          >
            {rest.map((a) => row(a, false))}
          </ul>
        )
      )}
      {o.inboxNext != null && (
        <button type="button" class="link-btn pad" onClick={() => o.loadInbox(true).catch((e) => setError(errorText(e)))}>
          {ot('loadMore')}
        </button>
      )}
      {o.canPublish && sent.length > 0 && (
        <>
          <h3 class="pane-sub" id="ann-sent-h">
            {ot('sentHeading')}
          </h3>
          <ul class="conv-list" aria-labelledby="ann-sent-h" data-testid="ann-sent-list">
            {sent.map((a) => row(a, true))}
          </ul>
          {o.sentNext != null && (
            <button type="button" class="link-btn pad" onClick={() => loadSent(o, true).catch((e) => setError(errorText(e)))}>
              {ot('loadMore')}
            </button>
          )}
        </>
      )}
    </div>
  );
}

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const TABS: readonly Exclude<ReaderState, 'all'>[] = ['read', 'unread', 'late'];

/** The sender's view: counts, who has (not) read it, export, withdraw. */
function SenderPanel({ a }: { a: Announcement }) {
  const store = useStore();
  const o = store.office;
  const c = a.counts!;
  const [tab, setTab] = useState<Exclude<ReaderState, 'all'>>('unread');
  const [readers, setReaders] = useState<{ tab: string; list: Reader[]; next: string | null } | null>(null);
  const asked = useRef(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Counts move as members read: refreshed while the page is open (no event tells the sender).
  useEffect(() => {
    if (a.withdrawn) return;
    const h = setInterval(() => {
      if (document.visibilityState === 'visible') openAnnouncement(o, a.id).catch(() => {});
    }, 10_000);
    return () => clearInterval(h);
  }, [a.id, a.withdrawn]);
  const load = (more: boolean) => {
    // Only the latest question's answer is shown (tabs may change faster than answers come).
    const n = ++asked.current;
    const prev = more && readers?.tab === tab ? readers : null;
    readersOf(o, a.id, tab, prev?.next).then(
      (r) => {
        if (n === asked.current) setReaders({ tab, list: prev ? [...prev.list, ...r.readers] : r.readers, next: r.next_cursor });
      },
      (e) => setError(errorText(e)),
    );
  };
  useEffect(() => load(false), [tab, c.read, c.late_read, c.audience]);
  const counts: [string, number, string][] = [
    [ot('cAudience'), c.audience, 'audience'],
    [ot('cRead'), c.read, 'read'],
    [ot('cUnread'), c.unread, 'unread'],
    [ot('cLate'), c.late_read, 'late_read'],
  ];
  const tabLabel = (t: string) =>
    t === 'read' ? ot('tabRead', { n: c.read }) : t === 'unread' ? ot('tabUnread', { n: c.unread }) : ot('tabLate', { n: c.late_read });
  const shownTabs = TABS.filter((t) => t !== 'late' || c.late_read > 0);
  const exportCsv = async () => {
    setBusy(true);
    setError(null);
    try {
      download(await readersCsv(o, a.id), `announcement-${a.id}-readers.csv`);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const withdraw = () => {
    if (!confirm(ot('confirmWithdrawAnn'))) return;
    withdrawAnnouncement(o, a.id).catch((e) => setError(errorText(e)));
  };
  return (
    <section class="ann-stats" aria-labelledby="ann-stats-h" data-testid="ann-stats">
      <div class="row-head">
        <h3 id="ann-stats-h">{ot('stats')}</h3>
        <button type="button" class="link-btn" onClick={() => openAnnouncement(o, a.id).catch((e) => setError(errorText(e)))} data-testid="ann-refresh">
          {ot('refresh')}
        </button>
      </div>
      <dl class="counts" data-testid="ann-counts">
        {counts.map(([label, v, key]) => (
          <div key={key}>
            <dt>{label}</dt>
            <dd data-count={key}>{v}</dd>
          </div>
        ))}
      </dl>
      <div class="tabs" role="tablist" aria-label={ot('readersOf')}>
        {shownTabs.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`readers-tab-${t}`}
            aria-selected={tab === t}
            aria-controls="readers-panel"
            tabIndex={tab === t ? 0 : -1}
            class={tab === t ? 'tab active' : 'tab'}
            data-testid={`readers-tab-${t}`}
            onClick={() => setTab(t)}
            onKeyDown={(e) => {
              const i = shownTabs.indexOf(t);
              const next = e.key === 'ArrowRight' ? shownTabs[(i + 1) % shownTabs.length] : e.key === 'ArrowLeft' ? shownTabs[(i + shownTabs.length - 1) % shownTabs.length] : null;
              if (next) {
                e.preventDefault();
                setTab(next);
                document.getElementById(`readers-tab-${next}`)?.focus();
              }
            }}
          >
            {tabLabel(t)}
          </button>
        ))}
      </div>
      <div id="readers-panel" role="tabpanel" aria-labelledby={`readers-tab-${tab}`} class="tab-panel">
        {readers === null || readers.tab !== tab ? (
          <p class="muted">{ot('loading')}</p>
        ) : readers.list.length === 0 ? (
          <p class="muted">{ot('nobody')}</p>
        ) : (
          <ul class="readers" data-testid="readers-list" data-state={readers.tab}>
            {readers.list.map((r) => (
              <li key={r.userid} data-userid={r.userid}>
                <span>{r.name || r.userid}</span>
                {r.read_ms ? <span class="muted"> · {ot('readAt', { time: fullTime(r.read_ms) })}</span> : null}
              </li>
            ))}
          </ul>
        )}
        {readers?.next && (
          <button type="button" class="link-btn" onClick={() => load(true)}>
            {ot('loadMore')}
          </button>
        )}
      </div>
      <div class="form-actions">
        <button type="button" onClick={exportCsv} disabled={busy} data-testid="ann-export">
          {busy ? ot('exporting') : ot('exportCsv')}
        </button>
        {!a.withdrawn && (
          <button type="button" class="danger" onClick={withdraw} data-testid="ann-withdraw">
            {ot('withdraw')}
          </button>
        )}
      </div>
      {error && (
        <p class="form-error" role="alert">
          {ot('error', { msg: error })}
        </p>
      )}
    </section>
  );
}

export function AnnouncementPage({ id }: { id: number }) {
  const store = useStore();
  const o = store.office;
  const depts = useDepartments();
  const [error, setError] = useState<string | null>(null);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    openAnnouncement(o, id).then(
      (a) => {
        if (a.sender !== store.api.userid && !a.read_ms && !a.withdrawn) markRead(o, id).catch(() => {});
      },
      (e) => {
        if (e instanceof ApiError && e.code === 'withdrawn') {
          markWithdrawn(o, id);
          setGone(true);
        } else setError(errorText(e));
      },
    );
  }, [id]);
  const a = o.details.get(id);
  if (!a) {
    return (
      <div class="empty-main">
        {gone ? (
          <p data-testid="ann-gone">{ot('withdrawnNotice')}</p>
        ) : error ? (
          <p class="form-error" role="alert">
            {ot('error', { msg: error })}
          </p>
        ) : (
          <p role="status">{ot('loading')}</p>
        )}
      </div>
    );
  }
  const mine = a.sender === store.api.userid;
  const deptNames = a.to.departments.map((d) => depts?.find((x) => x.id === d)?.name ?? `#${d}`).join('、');
  return (
    <article class="office-page" data-testid="ann-page" data-id={id} aria-labelledby="ann-title">
      <header class="page-head">
        <Back to="announcements" />
        <h2 id="ann-title" class="pane-title" data-testid="ann-title">
          {a.title}
        </h2>
        {a.pinned && !a.withdrawn && <span class="tag">{ot('pinnedTag')}</span>}
        <Tags a={a} />
      </header>
      <p class="muted" data-testid="ann-meta">
        {ot('byline', { name: a.sender_name || store.name(a.sender), time: fullTime(a.sent_ms) })}
        {a.pinned_until_ms > Date.now() && !a.withdrawn ? ` · ${ot('pinnedUntil', { time: fullTime(a.pinned_until_ms) })}` : ''}
      </p>
      {mine && <p class="muted">{a.to.all ? ot('toAll') : ot('toDepts', { names: deptNames })}</p>}
      {a.withdrawn && !mine ? (
        <p class="notice" data-testid="ann-gone">
          {ot('withdrawnNotice')}
        </p>
      ) : (
        <RichText blocks={a.body} testid="ann-body" />
      )}
      {a.attachment && isSafeLink(a.attachment.url) && !(a.withdrawn && !mine) && (
        <p class="attachment" data-testid="ann-attachment">
          <a href={a.attachment.url} rel="noopener noreferrer" target="_blank">
            {ot('attachmentLink', { name: a.attachment.name })}
          </a>
        </p>
      )}
      {mine && a.counts && <SenderPanel a={a} />}
      {error && (
        <p class="form-error" role="alert">
          {ot('error', { msg: error })}
        </p>
      )}
    </article>
  );
}

/** The end of the chosen day (local time), for "pinned until". */
function endOfDay(date: string): number {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(y, m - 1, d, 23, 59, 59, 999).getTime();
}

function localDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function AnnouncementCompose() {
  const store = useStore();
  const depts = useDepartments();
  const [f, setF] = useState({ title: '', body: '', ids: '', attachName: '', attachUrl: '', pin: '' });
  const [all, setAll] = useState(true);
  const [chosen, setChosen] = useState<number[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const blocks = useMemo(() => parseMarkup(f.body), [f.body]);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const today = Date.now();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const title = f.title.trim();
    const departments =
      depts && depts.length
        ? chosen
        : f.ids
            .split(/[,，\s]+/)
            .map((x) => Number(x))
            .filter((x) => Number.isInteger(x) && x > 0);
    const name = f.attachName.trim();
    const url = f.attachUrl.trim();
    const pin = f.pin ? endOfDay(f.pin) : 0;
    if (!title) return setError(ot('needTitle'));
    if (!blocks.length) return setError(ot('needBody'));
    if (!all && !departments.length) return setError(ot('needDept'));
    if ((name || url) && !(name && isSafeLink(url))) return setError(ot('badAttachment'));
    if (pin && (pin <= Date.now() || pin > Date.now() + 365 * 86400_000)) return setError(ot('badPin'));
    setBusy(true);
    try {
      const a = await publish(store.office, {
        all,
        departments,
        title,
        body: blocks,
        attachment: name ? { name, url } : null,
        pinned_until_ms: pin,
      });
      go({ name: 'announcement', id: a.id });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="office-page office-form" onSubmit={submit} data-testid="ann-compose" aria-labelledby="ann-compose-h" noValidate>
      <header class="page-head">
        <Back to="announcements" />
        <h2 id="ann-compose-h" class="pane-title">
          {ot('newAnnouncement')}
        </h2>
      </header>
      <div class="field">
        <label for="an-title">{ot('annTitle')}</label>
        <input id="an-title" maxLength={128} value={f.title} onInput={set('title')} data-testid="an-title" />
      </div>
      <div class="field">
        <label for="an-body">{ot('annBody')}</label>
        <textarea id="an-body" rows={8} value={f.body} onInput={set('body')} aria-describedby="an-body-help" data-testid="an-body" />
        <small id="an-body-help">{ot('markupHelp')}</small>
      </div>
      <section class="preview" aria-labelledby="an-preview-h">
        <h3 id="an-preview-h">
          {ot('preview')} <span class="muted">({textLength(blocks)} / 20000)</span>
        </h3>
        {blocks.length ? <RichText blocks={blocks} testid="an-preview" /> : <p class="muted">{ot('previewEmpty')}</p>}
      </section>
      <fieldset class="field">
        <legend>{ot('scope')}</legend>
        <div class="radio-row">
          <label>
            <input type="radio" name="an-scope" checked={all} onChange={() => setAll(true)} data-testid="an-all" /> {ot('everyone')}
          </label>
          <label>
            <input type="radio" name="an-scope" checked={!all} onChange={() => setAll(false)} data-testid="an-depts" />{' '}
            {ot('someDepartments')}
          </label>
        </div>
        {!all &&
          (depts && depts.length ? (
            <div class="dept-checks" role="group" aria-label={ot('departments')}>
              {depts.map((d) => (
                <label key={d.id}>
                  <input
                    type="checkbox"
                    checked={chosen.includes(d.id)}
                    data-testid="an-dept"
                    data-id={d.id}
                    onChange={(e) =>
                      setChosen((e.target as HTMLInputElement).checked ? [...chosen, d.id] : chosen.filter((x) => x !== d.id))
                    }
                  />{' '}
                  {d.name}
                </label>
              ))}
            </div>
          ) : (
            <div class="field">
              <label for="an-ids">{ot('deptIds')}</label>
              <input id="an-ids" inputMode="numeric" value={f.ids} onInput={set('ids')} data-testid="an-ids" />
            </div>
          ))}
      </fieldset>
      <div class="field-row">
        <div class="field">
          <label for="an-att-name">{ot('attachName')}</label>
          <input id="an-att-name" maxLength={128} value={f.attachName} onInput={set('attachName')} data-testid="an-att-name" />
        </div>
        <div class="field">
          <label for="an-att-url">{ot('attachUrl')}</label>
          <input id="an-att-url" type="url" value={f.attachUrl} onInput={set('attachUrl')} data-testid="an-att-url" />
        </div>
      </div>
      <div class="field">
        <label for="an-pin">{ot('pinUntil')}</label>
        <input
          id="an-pin"
          type="date"
          value={f.pin}
          min={localDate(today)}
          max={localDate(today + 365 * 86400_000)}
          onInput={set('pin')}
          data-testid="an-pin"
        />
      </div>
      {error && (
        <p class="form-error" role="alert" data-testid="an-error">
          {error}
        </p>
      )}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy} data-testid="an-publish">
          {busy ? ot('publishing') : ot('publish')}
        </button>
      </div>
    </form>
  );
}
