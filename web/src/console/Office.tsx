// Announcements and approvals (公告与审批), for the sysadmin and the auditor:
// every announcement with its read statistics, readers and CSV export
// (withdraw: sysadmin); the approval templates (edit, enable, disable:
// sysadmin); any request by number with its trail; the CSV export of
// finished approvals (sysadmin). The server refuses what a role may not do.
import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { fullTime } from '../i18n.ts';
import { Dialog } from '../ui/Dialog.tsx';
import { call, fetchFile, get, query } from './api.ts';
import { Field, FlashLine, Section, errorText, saveBlob, useAction } from './common.tsx';
import {
  type Announcement, type ApprovalRequest, type Block, type FlowStep, type Reader, type ReaderState, type Run, type Template,
  SAMPLE, dayRange, parseTemplate, safeLink, templateJson, trailDetail,
} from './office.ts';
import { ct } from './strings.ts';
import './office.css';

type Key = Parameters<typeof ct>[0];

/** A string for a server value (`st_approved`, `ta_skipped`…), the value itself if unknown. */
const named = (prefix: string, v: string) => ct(`${prefix}${v}` as Key) || v;

const arr = <T,>(v: T[] | unknown): T[] => (Array.isArray(v) ? v : []);

function Runs({ runs }: { runs: Run[] }) {
  return (
    <>
      {arr<Run>(runs).map((r, i) => {
        const inner = r.bold ? <strong>{r.text}</strong> : r.text;
        const href = safeLink(r.link);
        return href ? (
          <a key={i} href={href} target="_blank" rel="noopener noreferrer">
            {inner}
          </a>
        ) : (
          <span key={i}>{inner}</span>
        );
      })}
    </>
  );
}

/** The body's blocks as DOM, never as HTML. */
function Body({ blocks }: { blocks: Block[] }) {
  const items = (list: Run[][]) =>
    arr<Run[]>(list).map((it, j) => (
      <li key={j}>
        <Runs runs={it} />
      </li>
    ));
  return (
    <div class="rich" data-testid="ann-body">
      {arr<Block>(blocks).map((b, i) =>
        'paragraph' in b ? (
          <p key={i}>
            <Runs runs={b.paragraph} />
          </p>
        ) : 'bullets' in b ? (
          <ul key={i}>{items(b.bullets)}</ul>
        ) : 'numbered' in b ? (
          <ol key={i}>{items(b.numbered)}</ol>
        ) : null,
      )}
    </div>
  );
}

function Tags({ a }: { a: Announcement }) {
  return (
    <>
      {a.pinned ? <span class="tag">{ct('pinnedTag')}</span> : null}
      {a.withdrawn ? <span class="tag">{ct('withdrawnTag')}</span> : null}
      {a.sending && !a.withdrawn ? <span class="tag">{ct('sendingTag')}</span> : null}
    </>
  );
}

const COUNTS = [
  ['audience', 'cAudience'],
  ['read', 'cRead'],
  ['unread', 'cUnread'],
  ['late_read', 'cLate'],
] as const;

const STATES: [ReaderState, Key][] = [
  ['unread', 'rsUnread'],
  ['read', 'rsRead'],
  ['late', 'rsLate'],
  ['all', 'rsAll'],
];

function AnnouncementDialog(props: { id: number; admin: boolean; to: (a: Announcement) => string; onClose: () => void; onChanged: () => void }) {
  const path = `/v1/announcements/${props.id}`;
  const [a, setA] = useState<Announcement | null>(null);
  const [state, setState] = useState<ReaderState>('unread');
  const [readers, setReaders] = useState<{ state: ReaderState; list: Reader[]; next: string | null } | null>(null);
  const asked = useRef(0);
  const act = useAction();
  const fail = (e: unknown) => act.setFlash({ kind: 'error', text: errorText(e) });
  const load = async () => setA(await get<Announcement>(path));
  const loadReaders = async (more: boolean) => {
    // Only the latest question's answer is shown.
    const n = ++asked.current;
    const prev = more && readers?.state === state ? readers : null;
    const v = await get<{ readers: Reader[]; next_cursor: string | null }>(`${path}/readers${query({ state, limit: 100, cursor: prev?.next })}`);
    if (n === asked.current) setReaders({ state, list: [...(prev?.list ?? []), ...v.readers], next: v.next_cursor });
  };
  useEffect(() => void load().catch(fail), [props.id]);
  useEffect(() => void loadReaders(false).catch(fail), [props.id, state]);
  const att = a?.attachment;
  return (
    <Dialog title={a?.title ?? `#${props.id}`} onClose={props.onClose} testid="ann-dialog" wide>
      {!a ? (
        <p class="muted">{ct('loading')}</p>
      ) : (
        <div data-testid="ann-detail" data-id={a.id} data-withdrawn={String(a.withdrawn)}>
          <p class="muted small">
            {a.sender_name || a.sender} ({a.sender}) · {fullTime(a.sent_ms)} · {props.to(a)} <Tags a={a} />
            {a.pinned ? ` · ${ct('pinnedUntil', { time: fullTime(a.pinned_until_ms) })}` : ''}
          </p>
          <Body blocks={a.body ?? []} />
          {att ? (
            <p>
              {ct('attachment')}:{' '}
              {safeLink(att.url) ? (
                <a href={att.url} target="_blank" rel="noopener noreferrer">
                  {att.name}
                </a>
              ) : (
                att.name
              )}
            </p>
          ) : null}
          <dl class="counts" data-testid="ann-counts">
            {COUNTS.map(([k, label]) => (
              <div key={k}>
                <dt>{ct(label)}</dt>
                <dd data-count={k}>{a.counts[k]}</dd>
              </div>
            ))}
          </dl>
          <h3>{ct('readers')}</h3>
          <div class="seg" role="group" aria-label={ct('readers')}>
            {STATES.map(([s, label]) => (
              <button key={s} type="button" aria-pressed={state === s} data-testid={`readers-${s}`} onClick={() => setState(s)}>
                {ct(label)}
              </button>
            ))}
          </div>
          {!readers || readers.state !== state ? (
            <p class="muted">{ct('loading')}</p>
          ) : readers.list.length === 0 ? (
            <p class="muted">{ct('nobody')}</p>
          ) : (
            <ul class="readers" data-testid="readers" data-state={readers.state}>
              {readers.list.map((r) => (
                <li key={r.userid} data-testid="reader" data-userid={r.userid}>
                  {r.name || r.userid} <span class="muted small">({r.userid})</span>
                  {r.read_ms ? <span class="muted small"> · {ct('readAt', { time: fullTime(r.read_ms) })}</span> : null}
                </li>
              ))}
            </ul>
          )}
          {readers?.next && readers.state === state ? (
            <button type="button" class="link-btn" onClick={() => void loadReaders(true).catch(fail)}>
              {ct('more')}
            </button>
          ) : null}
          <div class="row end wrap">
            <button
              type="button"
              disabled={act.busy}
              data-testid="ann-export"
              onClick={() =>
                void act.run(async () => {
                  const f = await fetchFile(`${path}/readers.csv`, `announcement-${a.id}-readers.csv`);
                  saveBlob(f.blob, f.name);
                  return ct('downloaded', { name: f.name });
                })
              }
            >
              {act.busy ? ct('exportingCsv') : ct('exportCsv')}
            </button>
            {props.admin && !a.withdrawn ? (
              <button
                type="button"
                class="danger"
                disabled={act.busy}
                data-testid="ann-withdraw"
                onClick={() => {
                  if (!confirm(ct('confirmWithdrawAnn', { title: a.title }))) return;
                  void act.run(async () => {
                    await call('POST', `${path}/withdraw`, {});
                    await load();
                    props.onChanged();
                    return ct('annWithdrawn', { title: a.title });
                  });
                }}
              >
                {ct('withdraw')}
              </button>
            ) : null}
          </div>
        </div>
      )}
      <FlashLine flash={act.flash} />
    </Dialog>
  );
}

function Announcements(props: { admin: boolean }) {
  const [list, setList] = useState<Announcement[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [depts, setDepts] = useState(new Map<number, string>());
  const act = useAction();
  const load = async (more = false) => {
    const v = await get<{ announcements: Announcement[]; next_cursor: number | null }>(
      `/v1/announcements${query({ limit: 50, cursor: more ? next : undefined })}`,
    );
    setList(more && list ? [...list, ...v.announcements] : v.announcements);
    setNext(v.next_cursor);
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
    get<{ departments: { id: number; name: string }[] }>('/v1/directory/departments').then(
      (v) => setDepts(new Map(v.departments.map((d) => [d.id, d.name]))),
      () => {},
    );
  }, []);
  const to = (a: Announcement) => (a.to.all ? ct('toAll') : a.to.departments.map((d) => depts.get(d) ?? `#${d}`).join(', '));
  return (
    <Section
      title={ct('announcements')}
      testid="announcements"
      actions={
        <button type="button" disabled={act.busy} onClick={() => void act.run(() => load())}>
          {ct('refresh')}
        </button>
      }
    >
      <FlashLine flash={act.flash} />
      {!list ? (
        <p class="muted">{ct('loading')}</p>
      ) : list.length === 0 ? (
        <p class="muted">{ct('noAnnouncements')}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('announcements')}: ${ct('scrollTable')}`}>
          <table class="grid" data-testid="ann-table">
            <thead>
              <tr>
                <th scope="col">{ct('annTitle')}</th>
                <th scope="col">{ct('annSender')}</th>
                <th scope="col">{ct('annSent')}</th>
                <th scope="col">{ct('annTo')}</th>
                {COUNTS.map(([k, label]) => (
                  <th key={k} scope="col" class="num">
                    {ct(label)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {list.map((a) => (
                <tr key={a.id} data-testid="ann-row" data-id={a.id} data-withdrawn={String(a.withdrawn)}>
                  <td>
                    <button type="button" class="link-btn" data-testid="ann-open" onClick={() => setOpen(a.id)}>
                      {a.title}
                    </button>
                    <Tags a={a} />
                  </td>
                  <td>{a.sender_name || a.sender}</td>
                  <td>{fullTime(a.sent_ms)}</td>
                  <td>{to(a)}</td>
                  {COUNTS.map(([k]) => (
                    <td key={k} class="num" data-count={k}>
                      {a.counts[k]}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next ? (
        <button type="button" disabled={act.busy} onClick={() => void act.run(() => load(true))}>
          {ct('more')}
        </button>
      ) : null}
      {open !== null ? (
        <AnnouncementDialog id={open} admin={props.admin} to={to} onClose={() => setOpen(null)} onChanged={() => void load().catch(() => {})} />
      ) : null}
    </Section>
  );
}

function flowText(s: FlowStep): string {
  if ('leaders' in s) return ct('flowLeaders', { k: s.leaders });
  if ('user' in s) return s.user;
  if ('any_of' in s) return ct('flowAnyOf', { who: arr<string>(s.any_of).join(', ') });
  return JSON.stringify(s);
}

function TemplateDialog(props: { tpl: Template | null; admin: boolean; onClose: () => void; onSaved: (msg: string) => void }) {
  const t = props.tpl;
  const [id, setId] = useState(t?.id ?? '');
  const [text, setText] = useState(templateJson(t ?? SAMPLE));
  const act = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void act.run(async () => {
      const p = parseTemplate(text);
      if ('error' in p) throw new Error(p.error === 'json' ? ct('tplBadJson', { msg: p.message }) : ct('tplNotObject'));
      const saved = await call<Template>('PUT', `/v1/approvals/templates/${encodeURIComponent(id.trim())}`, p.body);
      props.onSaved(ct('tplSaved', { name: saved.name, version: saved.version }));
    });
  };
  const title = !props.admin ? `${t?.name} (${t?.id})` : t ? `${ct('editTemplate')}: ${t.name}` : ct('newTemplate');
  return (
    <Dialog title={title} onClose={props.onClose} testid="tpl-dialog" wide>
      <form class="form" onSubmit={submit}>
        <Field label={ct('tplId')} hint={t ? undefined : ct('tplIdHint')}>
          <input
            required
            pattern="[a-z0-9_\-]{1,32}"
            readOnly={!!t}
            value={id}
            data-testid="tpl-id"
            autocomplete="off"
            onInput={(e) => setId((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field label={ct('tplJson')} hint={props.admin ? ct('tplJsonHint') : undefined}>
          <textarea
            class="code"
            rows={18}
            spellcheck={false}
            readOnly={!props.admin}
            value={text}
            data-testid="tpl-json"
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
        </Field>
        <FlashLine flash={act.flash} />
        <div class="row end">
          <button type="button" onClick={props.onClose}>
            {props.admin ? ct('cancel') : ct('close')}
          </button>
          {props.admin ? (
            <button type="submit" class="primary" disabled={act.busy} data-testid="tpl-save">
              {act.busy ? ct('saving') : ct('save')}
            </button>
          ) : null}
        </div>
      </form>
    </Dialog>
  );
}

function Templates(props: { admin: boolean; list: Template[] | null; reload: () => Promise<void> }) {
  const [dialog, setDialog] = useState<null | { tpl: Template | null }>(null);
  const act = useAction();
  useEffect(() => {
    props.reload().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);
  const list = props.list;
  return (
    <Section
      title={ct('templates')}
      testid="templates"
      actions={
        props.admin ? (
          <button type="button" class="primary" data-testid="tpl-new" onClick={() => setDialog({ tpl: null })}>
            {ct('newTemplate')}
          </button>
        ) : null
      }
    >
      <FlashLine flash={act.flash} />
      {!list ? (
        <p class="muted">{ct('loading')}</p>
      ) : list.length === 0 ? (
        <p class="muted">{ct('noTemplates')}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('templates')}: ${ct('scrollTable')}`}>
          <table class="grid" data-testid="tpl-table">
            <thead>
              <tr>
                <th scope="col">{ct('tplId')}</th>
                <th scope="col">{ct('tplName')}</th>
                <th scope="col">{ct('tplFields')}</th>
                <th scope="col">{ct('tplFlow')}</th>
                <th scope="col">{ct('tplCc')}</th>
                <th scope="col">{ct('status')}</th>
                <th scope="col" class="num">
                  {ct('tplVersion')}
                </th>
                <th scope="col">
                  <span class="sr-only">{ct('manage')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((t) => (
                <tr key={t.id} data-testid="tpl-row" data-id={t.id} data-disabled={String(t.disabled)}>
                  <td>
                    <code>{t.id}</code>
                  </td>
                  <td>{t.name}</td>
                  <td class="small">
                    {t.fields.map((f) => `${f.label} (${f.type}${f.required ? `, ${ct('required')}` : ''})`).join('; ')}
                  </td>
                  <td class="small">{t.flow.map(flowText).join(' → ')}</td>
                  <td class="small">{t.cc.join(', ')}</td>
                  <td>{t.disabled ? ct('tplDisabled') : ct('tplEnabled')}</td>
                  <td class="num">{t.version}</td>
                  <td class="row wrap">
                    <button type="button" data-testid={props.admin ? 'tpl-edit' : 'tpl-view'} onClick={() => setDialog({ tpl: t })}>
                      {props.admin ? ct('edit') : ct('viewTemplate')}
                    </button>
                    {props.admin ? (
                      <button
                        type="button"
                        disabled={act.busy}
                        data-testid={t.disabled ? 'tpl-enable' : 'tpl-disable'}
                        onClick={() =>
                          void act.run(async () => {
                            await call('POST', `/v1/approvals/templates/${encodeURIComponent(t.id)}/${t.disabled ? 'enable' : 'disable'}`, {});
                            await props.reload();
                            return `${t.name}: ${t.disabled ? ct('tplEnabled') : ct('tplDisabled')}`;
                          })
                        }
                      >
                        {t.disabled ? ct('activate') : ct('disable')}
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {dialog ? (
        <TemplateDialog
          tpl={dialog.tpl}
          admin={props.admin}
          onClose={() => setDialog(null)}
          onSaved={(msg) => {
            setDialog(null);
            act.setFlash({ kind: 'ok', text: msg });
            void props.reload().catch(() => {});
          }}
        />
      ) : null}
    </Section>
  );
}

function RequestView({ r }: { r: ApprovalRequest }) {
  const pending = r.status === 'pending';
  return (
    <div data-testid="approval-view" data-id={r.id} data-status={r.status}>
      <dl class="kv">
        <dt>{ct('template')}</dt>
        <dd>
          {r.template_name} <code>{r.template}</code>
        </dd>
        <dt>{ct('applicant')}</dt>
        <dd>
          {r.applicant_name || r.applicant} ({r.applicant})
        </dd>
        <dt>{ct('status')}</dt>
        <dd data-testid="approval-status">
          {named('st_', r.status)}
          {pending ? ` · ${ct('stepOf', { step: r.step, n: r.steps.length })}` : ''}
        </dd>
        {pending && r.approvers.length ? (
          <>
            <dt>{ct('approvers')}</dt>
            <dd>{r.approvers.map((a) => `${a.name || a.userid} (${a.userid})`).join(', ')}</dd>
          </>
        ) : null}
        {r.cc.length ? (
          <>
            <dt>{ct('tplCc')}</dt>
            <dd>{r.cc.join(', ')}</dd>
          </>
        ) : null}
        <dt>{ct('submitted')}</dt>
        <dd>{fullTime(r.submitted_ms)}</dd>
        {r.finished_ms ? (
          <>
            <dt>{ct('finished')}</dt>
            <dd>{fullTime(r.finished_ms)}</dd>
          </>
        ) : null}
      </dl>
      <h3>{ct('values')}</h3>
      <dl class="kv">
        {r.values.map((v) => (
          <Fragment key={v.key}>
            <dt>{v.label}</dt>
            <dd>{v.value}</dd>
          </Fragment>
        ))}
      </dl>
      <h3>{ct('steps')}</h3>
      <ol class="plain">
        {r.steps.map((s, i) => (
          <li key={i}>{'leader_level' in s ? ct('ruleLeader', { n: s.leader_level }) : flowText(s)}</li>
        ))}
      </ol>
      <h3>{ct('trail')}</h3>
      <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('trail')}: ${ct('scrollTable')}`}>
        <table class="grid" data-testid="trail">
          <thead>
            <tr>
              <th scope="col">{ct('time')}</th>
              <th scope="col" class="num">
                {ct('step')}
              </th>
              <th scope="col">{ct('actor')}</th>
              <th scope="col">{ct('action')}</th>
              <th scope="col">{ct('detail')}</th>
            </tr>
          </thead>
          <tbody>
            {r.trail.map((t, i) => (
              <tr key={i} data-testid="trail-row" data-action={t.action}>
                <td>{fullTime(t.time_ms)}</td>
                <td class="num">{t.step}</td>
                <td>{t.actor}</td>
                <td>{named('ta_', t.action)}</td>
                <td>{trailDetail(t)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Lookup() {
  const [no, setNo] = useState('');
  const [r, setR] = useState<ApprovalRequest | null>(null);
  const act = useAction();
  return (
    <Section title={ct('lookup')} testid="approval-lookup">
      <form
        class="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setR(null);
          void act.run(async () => setR(await get<ApprovalRequest>(`/v1/approvals/${encodeURIComponent(no.trim())}`)));
        }}
      >
        <label class="grow">
          <span class="sr-only">{ct('requestNo')}</span>
          <input
            type="number"
            min={1}
            required
            placeholder={ct('requestNo')}
            value={no}
            data-testid="approval-no"
            onInput={(e) => setNo((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" disabled={act.busy} data-testid="approval-find">
          {ct('find')}
        </button>
      </form>
      <FlashLine flash={act.flash} />
      {r ? <RequestView r={r} /> : null}
    </Section>
  );
}

function Export(props: { templates: Template[] }) {
  const [f, setF] = useState({ from: '', to: '', template: '' });
  const act = useAction();
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  return (
    <Section title={ct('exportApprovals')} testid="approvals-export">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void act.run(async () => {
            const file = await fetchFile(`/v1/approvals/export.csv${query({ ...dayRange(f.from, f.to), template: f.template })}`, 'approvals.csv');
            saveBlob(file.blob, file.name);
            return ct('downloaded', { name: file.name });
          });
        }}
      >
        <Field label={ct('exportFrom')}>
          <input type="date" value={f.from} data-testid="export-from" onInput={set('from')} />
        </Field>
        <Field label={ct('exportTo')}>
          <input type="date" value={f.to} data-testid="export-to" onInput={set('to')} />
        </Field>
        <Field label={ct('template')}>
          <select value={f.template} data-testid="export-template" onChange={set('template')}>
            <option value="">{ct('allTemplates')}</option>
            {props.templates.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name} ({t.id})
              </option>
            ))}
          </select>
        </Field>
        <div class="row end">
          <button type="submit" class="primary" disabled={act.busy} data-testid="approvals-export-go">
            {act.busy ? ct('exportingCsv') : ct('exportCsv')}
          </button>
        </div>
      </form>
      <FlashLine flash={act.flash} />
    </Section>
  );
}

export function Office(props: { role: string }) {
  const admin = props.role === 'sysadmin';
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const reload = async () => setTemplates((await get<{ templates: Template[] }>('/v1/approvals/templates')).templates);
  return (
    <div class="stack">
      <Announcements admin={admin} />
      <Templates admin={admin} list={templates} reload={reload} />
      <Lookup />
      {admin ? <Export templates={templates ?? []} /> : null}
    </div>
  );
}
