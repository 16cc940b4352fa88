// 外部联系人 (sysadmin; the auditor reads it): departed employees' external
// contacts and customer groups waiting for a new owner and their hand-over
// (离职继承), the transfers with cancellation of waiting ones, the external
// accounts with disable/enable, and the external-contacts policy (changed
// by the secadmin, on this page's policy section and the policy page).
import { useEffect, useState } from 'preact/hooks';
import { fullTime } from '../i18n.ts';
import { Dialog } from '../ui/Dialog.tsx';
import { call, get, query } from './api.ts';
import { Field, FlashLine, Section, errorText, useAction } from './common.tsx';
import { durationText, type ExternalAccount, type ExternalPolicy, type Transfer, type Unassigned, POLICY_FIELDS } from './external.ts';
import { ct } from './strings.ts';

interface Member {
  userid: string;
  name: string;
  status: 'active' | 'disabled' | 'departed';
  title?: string;
}

export function External(props: { role: string }) {
  const canAct = props.role === 'sysadmin';
  // Bumped after a transfer: the lists that change with it reload.
  const [round, setRound] = useState(0);
  const changed = () => setRound((r) => r + 1);
  return (
    <div class="stack">
      <UnassignedList canAct={canAct} round={round} onChange={changed} />
      <Transfers canAct={canAct} round={round} onChange={changed} />
      <Accounts canAct={canAct} round={round} />
      <ExternalPolicyView editable={props.role === 'secadmin'} />
    </div>
  );
}

function UnassignedList(props: { canAct: boolean; round: number; onChange: () => void }) {
  const [list, setList] = useState<Unassigned[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [transfer, setTransfer] = useState<Unassigned | null>(null);
  const act = useAction();
  const load = async (append = false) => {
    const v = await get<{ unassigned: Unassigned[]; next_cursor: string | null }>(
      `/v1/external/unassigned${query({ limit: 100, cursor: append ? next : undefined })}`,
    );
    setList(append && list ? [...list, ...v.unassigned] : v.unassigned);
    setNext(v.next_cursor);
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, [props.round]);
  return (
    <Section
      title={ct('xUnassigned')}
      testid="ext-unassigned"
      actions={
        <button type="button" onClick={() => void act.run(() => load())}>
          {ct('refresh')}
        </button>
      }
    >
      <FlashLine flash={act.flash} />
      {!list ? (
        <p class="muted">{ct('loading')}</p>
      ) : list.length === 0 ? (
        <p class="muted" data-testid="unassigned-empty">
          {ct('xUnassignedNone')}
        </p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('xUnassigned')}: ${ct('scrollTable')}`}>
          <table class="grid" data-testid="unassigned-table">
            <thead>
              <tr>
                <th scope="col">{ct('xEmployee')}</th>
                <th scope="col">{ct('xDeparted')}</th>
                <th scope="col">{ct('xContacts')}</th>
                <th scope="col">{ct('xGroups')}</th>
                {props.canAct ? (
                  <th scope="col">
                    <span class="sr-only">{ct('manage')}</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {list.map((u) => (
                <tr key={u.employee} data-testid="unassigned-row" data-employee={u.employee}>
                  <td>
                    {u.name ?? u.employee} <span class="muted small">{u.employee}</span>
                  </td>
                  <td>{u.departed_ms ? fullTime(u.departed_ms) : '–'}</td>
                  <td>
                    <ul class="plain">
                      {u.contacts.map((c) => (
                        <li key={c.userid} data-testid="unassigned-contact" data-userid={c.userid}>
                          {c.name} <span class="muted small">{c.org ? `${c.org} · ` : ''}{c.userid}</span>
                        </li>
                      ))}
                    </ul>
                    {u.contacts.length === 0 ? '–' : null}
                  </td>
                  <td>
                    <ul class="plain">
                      {u.groups.map((g) => (
                        <li key={g.id} data-testid="unassigned-group" data-conv={g.id}>
                          {ct('xGroupLine', { name: g.name, n: g.member_count })}
                        </li>
                      ))}
                    </ul>
                    {u.groups.length === 0 ? '–' : null}
                  </td>
                  {props.canAct ? (
                    <td>
                      <button type="button" class="primary" data-testid="transfer-open" onClick={() => setTransfer(u)}>
                        {ct('xTransferTo')}
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next ? (
        <button type="button" class="link-btn" onClick={() => void act.run(() => load(true))}>
          {ct('loadMore')}
        </button>
      ) : null}
      {transfer ? (
        <TransferDialog
          from={transfer}
          onClose={() => setTransfer(null)}
          onDone={(msg) => {
            setTransfer(null);
            act.setFlash({ kind: 'ok', text: msg });
            props.onChange();
          }}
        />
      ) : null}
    </Section>
  );
}

/** Pick an active employee and hand everything `from` had to them (`all: true`). */
function TransferDialog(props: { from: Unassigned; onClose: () => void; onDone: (msg: string) => void }) {
  const from = props.from;
  const [q, setQ] = useState('');
  const [found, setFound] = useState<Member[] | null>(null);
  const [to, setTo] = useState<Member | null>(null);
  const [message, setMessage] = useState('');
  const act = useAction();
  useEffect(() => {
    let live = true;
    const h = setTimeout(
      () => {
        get<{ members: Member[] }>(`/v1/directory/members${query({ q: q.trim() || undefined, limit: 50 })}`)
          .then((v) => live && setFound(v.members.filter((m) => m.status === 'active' && m.userid !== from.employee)))
          .catch((e) => live && act.setFlash({ kind: 'error', text: errorText(e) }));
      },
      q ? 250 : 0,
    );
    return () => {
      live = false;
      clearTimeout(h);
    };
  }, [q]);
  const name = from.name ?? from.employee;
  return (
    <Dialog title={ct('xTransferTitle', { name })} onClose={props.onClose} testid="transfer-dialog">
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          if (!to) {
            act.setFlash({ kind: 'error', text: ct('xChooseEmployee') });
            return;
          }
          void act.run(async () => {
            await call('POST', '/v1/external/transfers', { from: from.employee, to: to.userid, all: true, message: message.trim() });
            props.onDone(ct('xTransferred', { from: name, to: `${to.name} (${to.userid})` }));
          });
        }}
      >
        <p>{ct('xTransferSummary', { contacts: from.contacts.length, groups: from.groups.length })}</p>
        <Field label={ct('xPickEmployee')}>
          <input type="search" value={q} data-testid="transfer-search" onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        </Field>
        <fieldset class="checks pick-list">
          <legend class="sr-only">{ct('xPickEmployee')}</legend>
          {found === null ? <p class="muted">{ct('loading')}</p> : found.length === 0 ? <p class="muted">{ct('xNoActive')}</p> : null}
          {(found ?? []).map((m) => (
            <label key={m.userid} class="check" data-testid="transfer-candidate" data-userid={m.userid}>
              <input type="radio" name="transfer-to" checked={to?.userid === m.userid} onChange={() => setTo(m)} /> {m.name}{' '}
              <span class="muted small">{m.userid}</span>
            </label>
          ))}
        </fieldset>
        <Field label={ct('xMessage')}>
          <textarea rows={2} maxLength={500} value={message} onInput={(e) => setMessage((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <FlashLine flash={act.flash} />
        <div class="row end">
          <button type="button" onClick={props.onClose}>
            {ct('cancel')}
          </button>
          <button type="submit" class="primary" disabled={act.busy || !to} data-testid="transfer-submit">
            {ct('xTransfer')}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function statusText(t: Transfer): string {
  const s = t.status === 'waiting' ? ct('xs_waiting') : t.status === 'done' ? ct('xs_done') : ct('xs_cancelled');
  return t.objected.length ? `${s} · ${ct('xObjected', { n: t.objected.length })}` : s;
}

function Transfers(props: { canAct: boolean; round: number; onChange: () => void }) {
  const [list, setList] = useState<Transfer[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const act = useAction();
  const load = async (append = false) => {
    const v = await get<{ transfers: Transfer[]; next_cursor: number | null }>(
      `/v1/external/transfers${query({ limit: 50, cursor: append ? next : undefined })}`,
    );
    setList(append && list ? [...list, ...v.transfers] : v.transfers);
    setNext(v.next_cursor);
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, [props.round]);
  return (
    <Section
      title={ct('xTransfers')}
      testid="ext-transfers"
      actions={
        <button type="button" onClick={() => void act.run(() => load())}>
          {ct('refresh')}
        </button>
      }
    >
      <FlashLine flash={act.flash} />
      {!list ? (
        <p class="muted">{ct('loading')}</p>
      ) : list.length === 0 ? (
        <p class="muted">{ct('xTransfersNone')}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('xTransfers')}: ${ct('scrollTable')}`}>
          <table class="grid" data-testid="transfer-table">
            <thead>
              <tr>
                <th scope="col" class="num">
                  #
                </th>
                <th scope="col">{ct('xFrom')}</th>
                <th scope="col">{ct('xTo')}</th>
                <th scope="col" class="num">
                  {ct('xContacts')}
                </th>
                <th scope="col" class="num">
                  {ct('xGroups')}
                </th>
                <th scope="col">{ct('xBy')}</th>
                <th scope="col">{ct('xCreated')}</th>
                <th scope="col">{ct('xDue')}</th>
                <th scope="col">{ct('xStatus')}</th>
                {props.canAct ? (
                  <th scope="col">
                    <span class="sr-only">{ct('manage')}</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {list.map((t) => (
                <tr key={t.id} data-testid="transfer-row" data-id={t.id} data-status={t.status} data-from={t.from} data-to={t.to}>
                  <td class="num">{t.id}</td>
                  <td>{t.from}</td>
                  <td>{t.to}</td>
                  <td class="num">{t.externals.length}</td>
                  <td class="num">{t.groups.length}</td>
                  <td>{t.by}</td>
                  <td>{fullTime(t.created_ms)}</td>
                  <td>{fullTime(t.due_ms)}</td>
                  <td>{statusText(t)}</td>
                  {props.canAct ? (
                    <td>
                      {t.status === 'waiting' ? (
                        <button
                          type="button"
                          class="danger"
                          disabled={act.busy}
                          data-testid="transfer-cancel"
                          onClick={() => {
                            if (!confirm(ct('xConfirmCancel', { id: t.id }))) return;
                            void act.run(async () => {
                              await call('POST', `/v1/external/transfers/${t.id}/cancel`, {});
                              props.onChange();
                              return ct('xCancelled', { id: t.id });
                            });
                          }}
                        >
                          {ct('xCancel')}
                        </button>
                      ) : null}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next ? (
        <button type="button" class="link-btn" onClick={() => void act.run(() => load(true))}>
          {ct('loadMore')}
        </button>
      ) : null}
    </Section>
  );
}

function Accounts(props: { canAct: boolean; round: number }) {
  const [list, setList] = useState<ExternalAccount[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const act = useAction();
  const load = async (append = false) => {
    const v = await get<{ accounts: ExternalAccount[]; next_cursor: string | null }>(
      `/v1/external/accounts${query({ limit: 100, cursor: append ? next : undefined })}`,
    );
    setList(append && list ? [...list, ...v.accounts] : v.accounts);
    setNext(v.next_cursor);
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, [props.round]);
  return (
    <Section
      title={ct('xAccounts')}
      testid="ext-accounts"
      actions={
        <button type="button" onClick={() => void act.run(() => load())}>
          {ct('refresh')}
        </button>
      }
    >
      <FlashLine flash={act.flash} />
      {!list ? (
        <p class="muted">{ct('loading')}</p>
      ) : list.length === 0 ? (
        <p class="muted">{ct('xAccountsNone')}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={`${ct('xAccounts')}: ${ct('scrollTable')}`}>
          <table class="grid" data-testid="ext-account-table">
            <thead>
              <tr>
                <th scope="col">{ct('xUserid')}</th>
                <th scope="col">{ct('xName')}</th>
                <th scope="col">{ct('xOrg')}</th>
                <th scope="col">{ct('xPhone')}</th>
                <th scope="col">{ct('xEmail')}</th>
                <th scope="col">{ct('xInvitedBy')}</th>
                <th scope="col">{ct('xServedBy')}</th>
                <th scope="col">{ct('xAccountCreated')}</th>
                <th scope="col">{ct('xStatus')}</th>
                {props.canAct ? (
                  <th scope="col">
                    <span class="sr-only">{ct('manage')}</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {list.map((a) => (
                <tr key={a.userid} data-testid="ext-account" data-userid={a.userid} data-disabled={String(a.disabled)}>
                  <td>{a.userid}</td>
                  <td>{a.name}</td>
                  <td>{a.org}</td>
                  <td>{a.phone || '–'}</td>
                  <td>{a.email || '–'}</td>
                  <td>{a.invited_by}</td>
                  <td>{(a.served_by ?? []).join(', ') || '–'}</td>
                  <td>{fullTime(a.created_ms)}</td>
                  <td>
                    <span class={a.disabled ? 'status disabled' : 'status active'}>{a.disabled ? ct('xDisabled') : ct('xEnabled')}</span>
                  </td>
                  {props.canAct ? (
                    <td>
                      <button
                        type="button"
                        disabled={act.busy}
                        data-testid={a.disabled ? 'ext-enable' : 'ext-disable'}
                        onClick={() => {
                          if (!a.disabled && !confirm(ct('xConfirmDisable', { name: a.name }))) return;
                          void act.run(async () => {
                            await call('PUT', `/v1/external/accounts/${encodeURIComponent(a.userid)}/disabled`, { disabled: !a.disabled });
                            await load();
                            return ct(a.disabled ? 'xAccountEnabled' : 'xAccountDisabled', { name: a.name });
                          });
                        }}
                      >
                        {a.disabled ? ct('xEnable') : ct('xDisable')}
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next ? (
        <button type="button" class="link-btn" onClick={() => void act.run(() => load(true))}>
          {ct('loadMore')}
        </button>
      ) : null}
    </Section>
  );
}

/** The external-contacts policy: every operator reads it, the secadmin changes it. */
export function ExternalPolicyView(props: { editable: boolean }) {
  const [policy, setPolicy] = useState<ExternalPolicy | null>(null);
  const [form, setForm] = useState<Record<string, string>>({});
  const act = useAction();
  const load = async () => {
    const p = await get<ExternalPolicy>('/v1/policy/external');
    setPolicy(p);
    setForm(Object.fromEntries(POLICY_FIELDS.map((k) => [k, String(p[k])])));
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);
  return (
    <Section title={ct('xPolicy')} testid="ext-policy">
      {!props.editable ? (
        <p class="muted" data-testid="ext-policy-readonly">
          {ct('policyReadOnly')}
        </p>
      ) : null}
      {!policy ? (
        <>
          <FlashLine flash={act.flash} />
          <p class="muted">{ct('loading')}</p>
        </>
      ) : (
        <form
          class="form policy"
          onSubmit={(e) => {
            e.preventDefault();
            void act.run(async () => {
              const body: Record<string, number> = {};
              for (const k of POLICY_FIELDS) body[k] = Number(form[k]);
              await call('PUT', '/v1/policy/external', body);
              await load();
              return ct('xPolicySaved');
            });
          }}
        >
          <fieldset disabled={!props.editable || act.busy}>
            {POLICY_FIELDS.map((k) => {
              const ms = k.endsWith('_ms') ? durationText(Number(form[k])) : null;
              return (
                <Field key={k} label={ct(`xp_${k}`)} hint={ms ? `${k} · ${ct('xAbout', { d: ms })}` : k}>
                  <input
                    type="number"
                    min={k.endsWith('_ms') ? 0 : 1}
                    required
                    value={form[k] ?? ''}
                    data-testid={`ext-policy-${k}`}
                    onInput={(e) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value })}
                  />
                </Field>
              );
            })}
          </fieldset>
          <FlashLine flash={act.flash} />
          {props.editable ? (
            <div class="row end">
              <button type="submit" class="primary" disabled={act.busy} data-testid="ext-policy-save">
                {act.busy ? ct('saving') : ct('save')}
              </button>
            </div>
          ) : null}
        </form>
      )}
    </Section>
  );
}
