// Approvals (审批): the lists (waiting for me, mine, done, copied to me),
// a new request (pick a form, fill its typed fields; the server's message
// for a wrong value is shown at the field), and a request's page (values,
// status, flow, current approvers, the whole trail; approve, reject with a
// reason, comment, withdraw).
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Member } from '../../api.ts';
import { fullTime, shortTime } from '../../i18n.ts';
import { go, href } from '../../router.ts';
import { errorText } from '../../state.ts';
import { BOXES, type Approval, type Box, type StepRule, type Template, type TrailEntry } from '../../office.ts';
import { allowed, fieldOfError, submitValues, whyOf, type FieldDef, type FormValue } from '../../logic/approvals.ts';
import { Dialog } from '../Dialog.tsx';
import { useStore } from '../hooks.ts';
import { Back } from './Announcements.tsx';
import { act, file, loadTemplates } from './actions.ts';
import { ot, type OKey } from './strings.ts';

const BOX_LABEL: Record<Box, OKey> = { waiting: 'tabWaiting', mine: 'tabMine', done: 'tabDone', cc: 'tabCc' };

function Status({ r }: { r: Approval }) {
  const cls = r.status === 'approved' ? 'tag ok' : r.status === 'rejected' ? 'tag warn' : 'tag';
  return (
    <span class={cls} data-testid="ap-status" data-status={r.status}>
      {ot(`status_${r.status}` as OKey)}
    </span>
  );
}

export function ApprovalList({ selected }: { selected: number | null }) {
  const store = useStore();
  const o = store.office;
  const box = o.box;
  const page = o.boxes.get(box);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setError(null);
    o.loadBox(box).catch((e) => setError(errorText(e)));
  }, [box]);
  const choose = (b: Box) => {
    o.box = b;
    store.changed();
  };
  return (
    <div class="pane">
      <div class="pane-head">
        <h2 class="pane-title">{ot('approvals')}</h2>
        <a class="button primary small" href={href({ name: 'approval-new' })} data-testid="ap-new">
          {ot('newRequest')}
        </a>
      </div>
      <div class="tabs boxes" role="tablist" aria-label={ot('boxes')}>
        {BOXES.map((b) => (
          <button
            key={b}
            type="button"
            role="tab"
            id={`ap-tab-${b}`}
            aria-selected={box === b}
            aria-controls="ap-panel"
            tabIndex={box === b ? 0 : -1}
            class={box === b ? 'tab active' : 'tab'}
            data-testid={`ap-tab-${b}`}
            onClick={() => choose(b)}
            onKeyDown={(e) => {
              const i = BOXES.indexOf(b);
              const next =
                e.key === 'ArrowRight' ? BOXES[(i + 1) % BOXES.length] : e.key === 'ArrowLeft' ? BOXES[(i + BOXES.length - 1) % BOXES.length] : null;
              if (next) {
                e.preventDefault();
                choose(next);
                document.getElementById(`ap-tab-${next}`)?.focus();
              }
            }}
          >
            {ot(BOX_LABEL[b])}
          </button>
        ))}
      </div>
      <div id="ap-panel" role="tabpanel" aria-labelledby={`ap-tab-${box}`}>
        {error && (
          <p class="form-error pad" role="alert">
            {ot('error', { msg: error })}
          </p>
        )}
        {!page ? (
          <p class="empty">{ot('loading')}</p>
        ) : page.items.length === 0 ? (
          <p class="empty">{ot('noRequests')}</p>
        ) : (
          <ul class="conv-list" data-testid="ap-list" data-box={box}>
            {page.items.map((r) => (
              <li key={r.id}>
                <a
                  href={href({ name: 'approval', id: r.id })}
                  class={selected === r.id ? 'conv-item active' : 'conv-item'}
                  aria-current={selected === r.id ? 'true' : undefined}
                  data-testid="ap-item"
                  data-id={r.id}
                  data-status={r.status}
                >
                  <span class="conv-main">
                    <span class="conv-top">
                      <span class="conv-title">{r.template_name}</span>
                      <time class="conv-time">{shortTime(r.submitted_ms)}</time>
                    </span>
                    <span class="conv-bottom">
                      <span class="conv-preview">{r.applicant_name || store.name(r.applicant)}</span>
                      <Status r={r} />
                    </span>
                  </span>
                </a>
              </li>
            ))}
          </ul>
        )}
        {page?.next != null && (
          <button type="button" class="link-btn pad" onClick={() => o.loadBox(box, true).catch((e) => setError(errorText(e)))}>
            {ot('loadMore')}
          </button>
        )}
      </div>
    </div>
  );
}

// ------------------------------------------------------------ new request

function MemberInput(props: { id: string; value: string; onValue: (v: string) => void; required: boolean; invalid: boolean; describedBy?: string }) {
  const store = useStore();
  const [opts, setOpts] = useState<Member[]>([]);
  useEffect(() => {
    const q = props.value.trim();
    if (!q) {
      setOpts([]);
      return;
    }
    const h = setTimeout(() => {
      store.api.members({ q, limit: 20 }).then(
        (r) => {
          store.rememberPeople(r.members);
          setOpts(r.members.filter((m) => m.status === 'active'));
        },
        () => {},
      );
    }, 250);
    return () => clearTimeout(h);
  }, [props.value]);
  return (
    <>
      <input
        id={props.id}
        list={`${props.id}-list`}
        value={props.value}
        autoComplete="off"
        placeholder={ot('memberHint')}
        required={props.required}
        aria-invalid={props.invalid || undefined}
        aria-describedby={props.describedBy}
        data-testid={props.id}
        onInput={(e) => props.onValue((e.target as HTMLInputElement).value)}
      />
      <datalist id={`${props.id}-list`}>
        {opts.map((m) => (
          <option key={m.userid} value={m.userid}>
            {m.name}
          </option>
        ))}
      </datalist>
    </>
  );
}

function flowText(t: Template, name: (u: string) => string): string {
  const steps: string[] = [];
  for (const s of t.flow) {
    if ('leaders' in s) for (let i = 1; i <= s.leaders; i++) steps.push(ot('stepLeader', { n: i }));
    else if ('user' in s) steps.push(name(s.user));
    else steps.push(ot('stepAnyOf', { names: s.any_of.map(name).join('、') }));
  }
  return steps.join(' → ');
}

function Field(props: {
  f: FieldDef;
  value: FormValue | undefined;
  set: (v: FormValue) => void;
  error: string | null;
}) {
  const { f, value, set, error } = props;
  const id = `ap-field-${f.key}`;
  const errId = error ? 'ap-error' : undefined;
  const label = (
    <>
      {f.label}
      {f.required && <span class="muted">{ot('requiredMark')}</span>}
    </>
  );
  const text = typeof value === 'string' ? value : '';
  const common = {
    id,
    required: f.required,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': errId,
    'data-testid': id,
  };
  const onText = (e: Event) => set((e.target as HTMLInputElement).value);
  if (f.type === 'date_range') {
    const r = typeof value === 'object' ? value : { start: '', end: '' };
    return (
      <fieldset class="field" data-field={f.key}>
        <legend>{label}</legend>
        <div class="field-row">
          <div class="field">
            <label for={`${id}-start`}>{ot('dateStart')}</label>
            <input
              id={`${id}-start`}
              type="date"
              value={r.start}
              required={f.required}
              aria-invalid={error ? true : undefined}
              aria-describedby={errId}
              data-testid={`${id}-start`}
              onInput={(e) => set({ ...r, start: (e.target as HTMLInputElement).value })}
            />
          </div>
          <div class="field">
            <label for={`${id}-end`}>{ot('dateEnd')}</label>
            <input
              id={`${id}-end`}
              type="date"
              value={r.end}
              min={r.start || undefined}
              required={f.required}
              aria-invalid={error ? true : undefined}
              aria-describedby={errId}
              data-testid={`${id}-end`}
              onInput={(e) => set({ ...r, end: (e.target as HTMLInputElement).value })}
            />
          </div>
        </div>
      </fieldset>
    );
  }
  return (
    <div class="field" data-field={f.key}>
      <label for={id}>{label}</label>
      {f.type === 'choice' ? (
        <select {...common} value={text} onChange={onText}>
          <option value="">{ot('chooseOption')}</option>
          {f.options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      ) : f.type === 'member' ? (
        <MemberInput id={id} value={text} onValue={set} required={f.required} invalid={!!error} describedBy={errId} />
      ) : f.type === 'number' || f.type === 'money' ? (
        <input
          {...common}
          type="text"
          inputMode="decimal"
          autoComplete="off"
          placeholder={f.type === 'money' ? ot('amountHint') : undefined}
          value={text}
          onInput={onText}
        />
      ) : (
        <textarea {...common} rows={2} maxLength={2000} value={text} onInput={onText} />
      )}
    </div>
  );
}

export function ApprovalNew({ template }: { template: string | null }) {
  const store = useStore();
  const o = store.office;
  const [error, setError] = useState<{ msg: string; field: string | null } | null>(null);
  const [form, setForm] = useState<Record<string, FormValue>>({});
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  useEffect(() => {
    loadTemplates(o).catch((e) => setError({ msg: errorText(e), field: null }));
  }, []);
  const list = o.templates;
  const head = (
    <header class="page-head">
      <Back to="approvals" />
      <h2 id="ap-new-h" class="pane-title">
        {template && list ? (list.find((t) => t.id === template)?.name ?? ot('newRequest')) : ot('chooseTemplate')}
      </h2>
    </header>
  );
  if (!template) {
    return (
      <section class="office-page" aria-labelledby="ap-new-h" data-testid="ap-templates">
        {head}
        {error && (
          <p class="form-error" role="alert">
            {ot('error', { msg: error.msg })}
          </p>
        )}
        {!list ? (
          <p class="muted">{ot('loading')}</p>
        ) : list.length === 0 ? (
          <p class="muted">{ot('noTemplates')}</p>
        ) : (
          <ul class="template-list">
            {list.map((t) => (
              <li key={t.id}>
                <a class="template" href={href({ name: 'approval-new', template: t.id })} data-testid={`tpl-${t.id}`}>
                  <strong>{t.name}</strong>
                  <span class="muted">{flowText(t, (u) => store.name(u))}</span>
                </a>
              </li>
            ))}
          </ul>
        )}
      </section>
    );
  }
  const t = list?.find((x) => x.id === template);
  if (!t) {
    return (
      <section class="office-page" aria-labelledby="ap-new-h">
        {head}
        <p class="muted">{list ? ot('noSuchTemplate') : ot('loading')}</p>
      </section>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await file(o, t.id, submitValues(t.fields, form));
      go({ name: 'approval', id: r.id });
    } catch (err) {
      const msg = errorText(err);
      const field = err instanceof ApiError ? fieldOfError(msg, t.fields) : null;
      setError({ msg, field });
      if (field) {
        const el = formRef.current?.querySelector<HTMLElement>(`[data-field="${field}"] input, [data-field="${field}"] select, [data-field="${field}"] textarea`);
        el?.focus();
      }
    } finally {
      setBusy(false);
    }
  };
  const errField = error?.field ? t.fields.find((f) => f.key === error.field) : undefined;
  return (
    <form ref={formRef} class="office-page office-form" onSubmit={submit} aria-labelledby="ap-new-h" data-testid="ap-form" data-template={t.id}>
      {head}
      <p class="muted">{ot('flowPreview', { steps: flowText(t, (u) => store.name(u)) })}</p>
      {t.fields.map((f) => (
        <Field
          key={f.key}
          f={f}
          value={form[f.key]}
          set={(v) => setForm((old) => ({ ...old, [f.key]: v }))}
          error={error?.field === f.key ? error.msg : null}
        />
      ))}
      {error && (
        <p class="form-error" role="alert" id="ap-error" data-testid="ap-error" data-field={error.field ?? undefined}>
          {errField ? ot('fieldError', { label: errField.label, msg: error.msg }) : ot('error', { msg: error.msg })}
        </p>
      )}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy} data-testid="ap-submit">
          {busy ? ot('submitting') : ot('submit')}
        </button>
      </div>
    </form>
  );
}

// ------------------------------------------------------------ a request

function stepText(s: StepRule, name: (u: string) => string): string {
  if ('leader_level' in s) return ot('stepLeader', { n: s.leader_level });
  if ('user' in s) return name(s.user);
  return ot('stepAnyOf', { names: s.any_of.map(name).join('、') });
}

function trailText(e: TrailEntry, name: (u: string) => string): string {
  const names = (l: string[] | undefined) => (l ?? []).map(name).join('、') || ot('nobody');
  switch (e.action) {
    case 'assigned':
      return ot('a_assigned', { step: e.step, names: names(e.approvers) });
    case 'reassigned':
      return ot('a_reassigned', { step: e.step, from: names(e.from), to: names(e.to) });
    case 'skipped':
    case 'approved':
    case 'rejected':
      return ot(`a_${e.action}`, { step: e.step });
    default:
      return ot(`a_${e.action}` as OKey);
  }
}

/** The server's reason, translated when it is a known one. */
function whyText(why: string, name: (u: string) => string): string {
  const w = whyOf(why);
  if (!w) return why;
  const { k, ...params } = w;
  if ('who' in params) params.who = params.who.split(', ').map(name).join('、');
  return ot(k, params);
}

function valueText(v: Approval['values'][number], name: (u: string) => string): string {
  if (v.type === 'date_range') {
    const [start, end] = v.value.split('/');
    return end ? ot('dateRange', { start, end }) : v.value;
  }
  if (v.type === 'member') return `${name(v.value)} (${v.value})`;
  return v.value;
}

type Act = 'approve' | 'reject' | 'comment';

export function ApprovalPage({ id }: { id: number }) {
  const store = useStore();
  const o = store.office;
  const me = store.api.userid;
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const [dialog, setDialog] = useState<Act | null>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    o.request(id).catch((e) => setError(errorText(e)));
  }, [id]);
  const r = o.requests.get(id);
  if (!r) {
    return (
      <div class="empty-main">
        {error ? (
          <p class="form-error" role="alert">
            {ot('error', { msg: error })}
          </p>
        ) : (
          <p role="status">{ot('loading')}</p>
        )}
      </div>
    );
  }
  const name = (u: string) => (u === 'system' ? ot('system') : store.name(u));
  const can = allowed(r, me);
  const run = async (action: Act | 'withdraw', body = '') => {
    setBusy(true);
    setError(null);
    setInfo(null);
    try {
      await act(o, r, action, body);
      setDialog(null);
      setText('');
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'already_decided' || e.code === 'stale' || e.code === 'withdrawn')) {
        setDialog(null);
        setInfo(e.code === 'withdrawn' ? errorText(e) : ot('alreadyDecided'));
        o.request(id).catch(() => {});
      } else {
        setError(errorText(e));
      }
    } finally {
      setBusy(false);
    }
  };
  const open = (a: Act) => {
    setText('');
    setError(null);
    setDialog(a);
  };
  const pending = r.status === 'pending';
  return (
    <article class="office-page" data-testid="ap-page" data-id={id} data-status={r.status} aria-labelledby="ap-title">
      <header class="page-head">
        <Back to="approvals" />
        <h2 id="ap-title" class="pane-title">
          {r.template_name}
        </h2>
        <Status r={r} />
      </header>
      <p class="muted">{ot('applicantLine', { name: r.applicant_name || name(r.applicant), time: fullTime(r.submitted_ms) })}</p>
      <section aria-labelledby="ap-values-h">
        <h3 id="ap-values-h">{ot('values')}</h3>
        <dl class="kv" data-testid="ap-values">
          {r.values.map((v) => (
            <div key={v.key} data-key={v.key}>
              <dt>{v.label}</dt>
              <dd>{valueText(v, name)}</dd>
            </div>
          ))}
        </dl>
      </section>
      <section aria-labelledby="ap-flow-h">
        <h3 id="ap-flow-h">
          {ot('flow')}
          {pending && r.steps.length > 0 && <span class="muted"> · {ot('stepOf', { n: r.step, m: r.steps.length })}</span>}
        </h3>
        <ol class="steps" data-testid="ap-steps">
          {r.steps.map((s, i) => (
            <li key={i} class={pending && i + 1 === r.step ? 'current' : i + 1 < r.step || !pending ? 'past' : ''} aria-current={pending && i + 1 === r.step ? 'step' : undefined}>
              {stepText(s, name)}
            </li>
          ))}
        </ol>
        {pending && (
          <p data-testid="ap-approvers">
            {ot('currentApprovers', { names: r.approvers.map((a) => a.name || a.userid).join('、') || ot('nobody') })}
          </p>
        )}
        {r.cc.length > 0 && <p class="muted">{ot('ccLine', { names: r.cc.map(name).join('、') })}</p>}
      </section>
      <section aria-labelledby="ap-trail-h">
        <h3 id="ap-trail-h">{ot('trail')}</h3>
        <ol class="trail" data-testid="ap-trail">
          {r.trail.map((e, i) => (
            <li key={i} data-action={e.action} data-actor={e.actor}>
              <time class="muted">{fullTime(e.time_ms)}</time>
              <span>
                <strong>{name(e.actor)}</strong> {trailText(e, name)}
              </span>
              {e.reason && <span class="trail-extra">{ot('reasonLine', { text: e.reason })}</span>}
              {e.comment && <span class="trail-extra">{ot('commentLine', { text: e.comment })}</span>}
              {e.text && <span class="trail-extra">{e.text}</span>}
              {e.why && <span class="trail-extra muted">{ot('whyLine', { text: whyText(e.why, name) })}</span>}
            </li>
          ))}
        </ol>
      </section>
      {info && (
        <p class="notice" role="status">
          {info}
        </p>
      )}
      {error && !dialog && (
        <p class="form-error" role="alert" data-testid="ap-act-error">
          {ot('error', { msg: error })}
        </p>
      )}
      <div class="form-actions start">
        {can.decide && (
          <>
            <button type="button" class="primary" onClick={() => open('approve')} data-testid="ap-approve">
              {ot('approve')}
            </button>
            <button type="button" class="danger" onClick={() => open('reject')} data-testid="ap-reject">
              {ot('reject')}
            </button>
          </>
        )}
        <button type="button" onClick={() => open('comment')} data-testid="ap-comment">
          {ot('comment')}
        </button>
        {can.withdraw && (
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={() => {
              if (confirm(ot('confirmWithdrawReq'))) run('withdraw');
            }}
            data-testid="ap-withdraw"
          >
            {ot('withdrawRequest')}
          </button>
        )}
      </div>
      {dialog && (
        <Dialog
          title={dialog === 'approve' ? ot('approveTitle') : dialog === 'reject' ? ot('rejectTitle') : ot('commentTitle')}
          onClose={() => setDialog(null)}
          testid="ap-dialog"
        >
          <form
            onSubmit={(e) => {
              e.preventDefault();
              run(dialog, text.trim());
            }}
          >
            <div class="field">
              <label for="ap-text">
                {dialog === 'approve' ? ot('commentOptional') : dialog === 'reject' ? ot('reason') : ot('commentText')}
              </label>
              <textarea
                id="ap-text"
                rows={3}
                maxLength={1000}
                required={dialog !== 'approve'}
                value={text}
                onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
                data-testid="ap-text"
              />
            </div>
            {error && (
              <p class="form-error" role="alert">
                {ot('error', { msg: error })}
              </p>
            )}
            <div class="form-actions">
              <button type="button" onClick={() => setDialog(null)}>
                {ot('cancel')}
              </button>
              <button
                type="submit"
                class={dialog === 'reject' ? 'danger' : 'primary'}
                disabled={busy || (dialog !== 'approve' && !text.trim())}
                data-testid="ap-confirm"
              >
                {dialog === 'approve' ? ot('approve') : dialog === 'reject' ? ot('reject') : ot('send')}
              </button>
            </div>
          </form>
        </Dialog>
      )}
    </article>
  );
}
