import { useEffect, useMemo, useState } from 'preact/hooks';
import { fullTime } from '../i18n.ts';
import { Dialog } from '../ui/Dialog.tsx';
import { call, get, query } from './api.ts';
import { Field, FlashLine, Section, errorText, useAction } from './common.tsx';
import { ct } from './strings.ts';

interface Dept {
  id: number;
  parent: number | null;
  name: string;
  order: number;
  leaders: string[];
}

interface Member {
  userid: string;
  name: string;
  departments: number[];
  title: string;
  email: string;
  mobile: string;
  status: 'active' | 'disabled' | 'departed';
  has_password?: boolean;
  locked_until_ms?: number;
  failed_logins?: number;
  permissions?: string[];
}

type Key = Parameters<typeof ct>[0];

/** The members' permissions the sysadmin grants here: (permission, label, granted, revoked). */
const PERMS: [string, Key, Key, Key][] = [
  ['notice:urgent', 'permNoticeUrgent', 'permGranted', 'permRevoked'],
  ['announcement:publish', 'permAnnouncePublish', 'permAnnGranted', 'permAnnRevoked'],
  ['external:add', 'permExternalAdd', 'permExtGranted', 'permExtRevoked'],
];

function statusName(s: string): string {
  return s === 'active' ? ct('statusActive') : s === 'disabled' ? ct('statusDisabled') : ct('statusDeparted');
}

function children(depts: Dept[], parent: number | null): Dept[] {
  return depts.filter((d) => d.parent === parent).sort((a, b) => a.order - b.order || a.id - b.id);
}

function Tree(props: { depts: Dept[]; parent: number | null; selected: number; onSelect: (id: number) => void; level: number }) {
  const kids = children(props.depts, props.parent);
  if (kids.length === 0) return null;
  return (
    <ul role={props.level === 1 ? 'tree' : 'group'} aria-label={props.level === 1 ? ct('departments') : undefined} class="tree">
      {kids.map((d) => (
        <li key={d.id} role="treeitem" aria-level={props.level} aria-selected={d.id === props.selected}>
          <button
            type="button"
            class={d.id === props.selected ? 'tree-item selected' : 'tree-item'}
            data-testid="dept"
            data-dept={d.id}
            onClick={() => props.onSelect(d.id)}
          >
            {d.name} <span class="muted small">#{d.id}</span>
          </button>
          <Tree depts={props.depts} parent={d.id} selected={props.selected} onSelect={props.onSelect} level={props.level + 1} />
        </li>
      ))}
    </ul>
  );
}

/** Every department except `id` and its descendants (the possible parents of `id`). */
function possibleParents(depts: Dept[], id: number | null): Dept[] {
  if (id === null) return depts;
  const banned = new Set<number>([id]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const d of depts)
      if (d.parent !== null && banned.has(d.parent) && !banned.has(d.id)) {
        banned.add(d.id);
        grew = true;
      }
  }
  return depts.filter((d) => !banned.has(d.id));
}

function DeptDialog(props: { depts: Dept[]; dept: Dept | null; parent: number; onClose: () => void; onDone: (msg: string) => void }) {
  const editing = props.dept;
  const [name, setName] = useState(editing?.name ?? '');
  const [parent, setParent] = useState<number>(editing?.parent ?? props.parent);
  const [order, setOrder] = useState(String(editing?.order ?? 0));
  const [leaders, setLeaders] = useState((editing?.leaders ?? []).join(', '));
  const act = useAction();
  const isRoot = editing?.parent === null;
  const parents = possibleParents(props.depts, editing?.id ?? null);
  const submit = (e: Event) => {
    e.preventDefault();
    void act.run(async () => {
      // A new department takes the next free id.
      const id = editing?.id ?? Math.max(1, ...props.depts.map((d) => d.id)) + 1;
      const body: Record<string, unknown> = {
        name: name.trim(),
        order: Number.parseInt(order, 10) || 0,
        leaders: leaders
          .split(/[,，\s]+/)
          .map((s) => s.trim())
          .filter(Boolean),
      };
      if (!isRoot) body.parent = parent;
      await call('PUT', `/v1/directory/departments/${id}`, body);
      props.onDone(`${ct('saved')}: ${name.trim()} #${id}`);
    });
  };
  return (
    <Dialog title={editing ? ct('editDept') : ct('addSubDept')} onClose={props.onClose} testid="dept-dialog">
      <form onSubmit={submit} class="form">
        <Field label={ct('deptName')}>
          <input required maxLength={64} value={name} data-testid="dept-name" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        {isRoot ? null : (
          <Field label={ct('parentDept')}>
            <select value={String(parent)} data-testid="dept-parent" onChange={(e) => setParent(Number((e.target as HTMLSelectElement).value))}>
              {parents.map((d) => (
                <option key={d.id} value={String(d.id)}>
                  {d.name} #{d.id}
                </option>
              ))}
            </select>
          </Field>
        )}
        <Field label={ct('order')}>
          <input type="number" value={order} onInput={(e) => setOrder((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label={ct('leaders')}>
          <input value={leaders} onInput={(e) => setLeaders((e.target as HTMLInputElement).value)} />
        </Field>
        <FlashLine flash={act.flash} />
        <div class="row end">
          <button type="button" onClick={props.onClose}>
            {ct('cancel')}
          </button>
          <button type="submit" class="primary" disabled={act.busy} data-testid="dept-save">
            {act.busy ? ct('saving') : ct('save')}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function DeptChecks(props: { depts: Dept[]; value: number[]; onChange: (v: number[]) => void }) {
  return (
    <fieldset class="checks">
      <legend>{ct('memberDepts')}</legend>
      {props.depts
        .slice()
        .sort((a, b) => a.id - b.id)
        .map((d) => (
          <label key={d.id} class="check">
            <input
              type="checkbox"
              checked={props.value.includes(d.id)}
              data-testid={`member-dept-${d.id}`}
              onChange={(e) =>
                props.onChange(
                  (e.target as HTMLInputElement).checked ? [...props.value, d.id] : props.value.filter((x) => x !== d.id),
                )
              }
            />{' '}
            {d.name} #{d.id}
          </label>
        ))}
    </fieldset>
  );
}

function AddMemberDialog(props: { depts: Dept[]; dept: number; onClose: () => void; onDone: (msg: string) => void }) {
  const [f, setF] = useState({ userid: '', name: '', title: '', email: '', mobile: '', password: '' });
  const [depts, setDepts] = useState<number[]>([props.dept]);
  const act = useAction();
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = (e: Event) => {
    e.preventDefault();
    void act.run(async () => {
      await call('POST', '/v1/directory/members', {
        userid: f.userid.trim(),
        name: f.name.trim(),
        departments: depts,
        title: f.title,
        email: f.email,
        mobile: f.mobile,
        password: f.password || undefined,
      });
      props.onDone(ct('memberAdded', { name: f.name.trim() }));
    });
  };
  return (
    <Dialog title={ct('addMember')} onClose={props.onClose} testid="member-add-dialog">
      <form onSubmit={submit} class="form">
        <Field label={ct('userid')} hint="A–Z a–z 0–9 _ . @ -">
          <input required maxLength={64} pattern="[A-Za-z0-9_.@\-]+" value={f.userid} data-testid="new-userid" onInput={set('userid')} autocomplete="off" />
        </Field>
        <Field label={ct('name')}>
          <input required maxLength={64} value={f.name} data-testid="new-name" onInput={set('name')} />
        </Field>
        <Field label={ct('title')}>
          <input value={f.title} onInput={set('title')} />
        </Field>
        <Field label={ct('email')}>
          <input type="email" value={f.email} onInput={set('email')} />
        </Field>
        <Field label={ct('mobile')}>
          <input value={f.mobile} onInput={set('mobile')} />
        </Field>
        <DeptChecks depts={props.depts} value={depts} onChange={setDepts} />
        <Field label={ct('initialPassword')}>
          <input type="password" minLength={8} maxLength={256} value={f.password} data-testid="new-password" onInput={set('password')} autocomplete="new-password" />
        </Field>
        <FlashLine flash={act.flash} />
        <div class="row end">
          <button type="button" onClick={props.onClose}>
            {ct('cancel')}
          </button>
          <button type="submit" class="primary" disabled={act.busy || depts.length === 0} data-testid="new-member-save">
            {act.busy ? ct('saving') : ct('add')}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function MemberDialog(props: { userid: string; depts: Dept[]; onClose: () => void; onChanged: () => void }) {
  const [m, setM] = useState<Member | null>(null);
  const [f, setF] = useState({ name: '', title: '', email: '', mobile: '' });
  const [depts, setDepts] = useState<number[]>([]);
  const [pw, setPw] = useState('');
  const act = useAction();
  const path = `/v1/directory/members/${encodeURIComponent(props.userid)}`;
  const load = async () => {
    const v = await get<Member>(path);
    setM(v);
    setF({ name: v.name, title: v.title, email: v.email, mobile: v.mobile });
    setDepts(v.departments);
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, [props.userid]);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const after = async (msg: string) => {
    await load();
    props.onChanged();
    return msg;
  };
  if (!m)
    return (
      <Dialog title={props.userid} onClose={props.onClose} testid="member-dialog">
        <FlashLine flash={act.flash} />
        <p class="muted">{ct('loading')}</p>
      </Dialog>
    );
  const locked = (m.locked_until_ms ?? 0) > Date.now();
  return (
    <Dialog title={`${m.name} (${m.userid})`} onClose={props.onClose} testid="member-dialog" wide>
      <p data-testid="member-state">
        <span class={`status ${m.status}`}>{statusName(m.status)}</span> ·{' '}
        {m.has_password ? ct('hasPassword') : ct('noPassword')} ·{' '}
        <span data-testid="lock-state">
          {locked ? ct('locked', { until: fullTime(m.locked_until_ms ?? 0) }) : ct('notLocked')}
          {m.failed_logins ? ` · ${ct('failedLogins', { n: m.failed_logins })}` : ''}
        </span>
      </p>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void act.run(async () => {
            await call('PATCH', path, { ...f, departments: depts });
            return after(ct('saved'));
          });
        }}
      >
        <Field label={ct('name')}>
          <input required maxLength={64} value={f.name} onInput={set('name')} data-testid="edit-name" />
        </Field>
        <Field label={ct('title')}>
          <input value={f.title} onInput={set('title')} data-testid="edit-title" />
        </Field>
        <Field label={ct('email')}>
          <input type="email" value={f.email} onInput={set('email')} />
        </Field>
        <Field label={ct('mobile')}>
          <input value={f.mobile} onInput={set('mobile')} />
        </Field>
        <DeptChecks depts={props.depts} value={depts} onChange={setDepts} />
        <div class="row end">
          <button type="submit" class="primary" disabled={act.busy || m.status === 'departed' || depts.length === 0} data-testid="member-save">
            {ct('save')}
          </button>
        </div>
      </form>
      <div class="row wrap actions-row">
        {m.status === 'active' ? (
          <button
            type="button"
            disabled={act.busy}
            data-testid="member-disable"
            onClick={() => {
              if (!confirm(ct('confirmDisable', { name: m.name }))) return;
              void act.run(async () => {
                await call('PUT', `${path}/status`, { status: 'disabled' });
                return after(`${m.name}: ${ct('statusDisabled')}`);
              });
            }}
          >
            {ct('disable')}
          </button>
        ) : null}
        {m.status === 'disabled' ? (
          <button
            type="button"
            disabled={act.busy}
            data-testid="member-activate"
            onClick={() =>
              void act.run(async () => {
                await call('PUT', `${path}/status`, { status: 'active' });
                return after(`${m.name}: ${ct('statusActive')}`);
              })
            }
          >
            {ct('activate')}
          </button>
        ) : null}
        {m.status !== 'departed' ? (
          <button
            type="button"
            class="danger"
            disabled={act.busy}
            data-testid="member-depart"
            onClick={() => {
              if (!confirm(ct('confirmDepart', { name: m.name }))) return;
              void act.run(async () => {
                await call('PUT', `${path}/status`, { status: 'departed' });
                return after(`${m.name}: ${ct('statusDeparted')}`);
              });
            }}
          >
            {ct('depart')}
          </button>
        ) : null}
        {locked || (m.failed_logins ?? 0) > 0 ? (
          <button
            type="button"
            disabled={act.busy}
            data-testid="member-unlock"
            onClick={() =>
              void act.run(async () => {
                await call('POST', `${path}/unlock`, {});
                return after(ct('unlocked', { name: m.name }));
              })
            }
          >
            {ct('unlock')}
          </button>
        ) : null}
      </div>
      {m.status !== 'departed'
        ? PERMS.map(([perm, label, granted, revoked]) => (
            <label key={perm} class="check">
              <input
                type="checkbox"
                checked={(m.permissions ?? []).includes(perm)}
                disabled={act.busy}
                data-testid={`perm-${perm.replace(':', '-')}`}
                onChange={(e) => {
                  const on = (e.target as HTMLInputElement).checked;
                  // Shown at once; put back as it was if the server refuses.
                  const was = m.permissions ?? [];
                  setM({ ...m, permissions: on ? [...was, perm] : was.filter((p) => p !== perm) });
                  void act
                    .run(async () => {
                      await call(on ? 'PUT' : 'DELETE', `${path}/permissions/${perm}`);
                      return after(ct(on ? granted : revoked, { name: m.name }));
                    })
                    .then((ok) => {
                      if (!ok) setM({ ...m, permissions: was });
                    });
                }}
              />{' '}
              {ct(label)}
            </label>
          ))
        : null}
      {m.status !== 'departed' ? (
        <form
          class="row wrap"
          onSubmit={(e) => {
            e.preventDefault();
            void act.run(async () => {
              await call('PUT', `${path}/password`, { password: pw });
              setPw('');
              return after(ct('passwordReset', { name: m.name }));
            });
          }}
        >
          <label class="grow">
            <span class="sr-only">{ct('newPassword')}</span>
            <input
              type="password"
              required
              minLength={8}
              maxLength={256}
              placeholder={ct('newPassword')}
              value={pw}
              data-testid="reset-password"
              autocomplete="new-password"
              onInput={(e) => setPw((e.target as HTMLInputElement).value)}
            />
          </label>
          <button type="submit" disabled={act.busy} data-testid="reset-password-submit">
            {ct('resetPassword')}
          </button>
        </form>
      ) : null}
      <FlashLine flash={act.flash} />
    </Dialog>
  );
}

export function Directory() {
  const [depts, setDepts] = useState<Dept[]>([]);
  const [selected, setSelected] = useState(1);
  const [members, setMembers] = useState<Member[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [q, setQ] = useState('');
  const [searching, setSearching] = useState<string | null>(null);
  const [dialog, setDialog] = useState<null | { kind: 'dept'; edit: boolean } | { kind: 'add' } | { kind: 'member'; userid: string }>(null);
  const act = useAction();

  const loadDepts = async () => {
    const v = await get<{ departments: Dept[] }>('/v1/directory/departments');
    setDepts(v.departments);
  };
  const loadMembers = async (append = false) => {
    const v = await get<{ members: Member[]; next_cursor: string | null }>(
      `/v1/directory/members${query(
        searching ? { q: searching, limit: 100 } : { department: selected, limit: 100, cursor: append ? next : undefined },
      )}`,
    );
    setMembers(append && members ? [...members, ...v.members] : v.members);
    setNext(v.next_cursor);
  };
  useEffect(() => {
    loadDepts().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);
  useEffect(() => {
    setMembers(null);
    loadMembers().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, [selected, searching]);

  const current = useMemo(() => depts.find((d) => d.id === selected), [depts, selected]);
  const refreshAll = () => {
    void loadDepts().catch(() => {});
    void loadMembers().catch(() => {});
  };
  const done = (msg: string) => {
    setDialog(null);
    act.setFlash({ kind: 'ok', text: msg });
    refreshAll();
  };
  return (
    <div class="split">
      <Section
        title={ct('departments')}
        testid="dept-tree"
        actions={
          <>
            <button type="button" data-testid="dept-add" onClick={() => setDialog({ kind: 'dept', edit: false })} disabled={!current}>
              {ct('addSubDept')}
            </button>
          </>
        }
      >
        {depts.length ? <Tree depts={depts} parent={null} selected={selected} onSelect={(id) => (setSearching(null), setQ(''), setSelected(id))} level={1} /> : <p class="muted">{ct('loading')}</p>}
        {current ? (
          <div class="row wrap">
            <button type="button" data-testid="dept-edit" onClick={() => setDialog({ kind: 'dept', edit: true })}>
              {ct('editDept')}
            </button>
            {current.parent !== null ? (
              <button
                type="button"
                class="danger"
                data-testid="dept-delete"
                onClick={() => {
                  if (!confirm(ct('confirmDeleteDept', { name: current.name }))) return;
                  void act.run(async () => {
                    await call('DELETE', `/v1/directory/departments/${current.id}`);
                    setSelected(current.parent ?? 1);
                    await loadDepts();
                    return `${ct('delete')}: ${current.name}`;
                  });
                }}
              >
                {ct('deleteDept')}
              </button>
            ) : null}
          </div>
        ) : null}
      </Section>
      <Section
        title={searching ? ct('searchResults') : ct('membersOf', { dept: current?.name ?? `#${selected}` })}
        testid="members"
        actions={
          <button type="button" class="primary" data-testid="member-add" onClick={() => setDialog({ kind: 'add' })}>
            {ct('addMember')}
          </button>
        }
      >
        <form
          class="row"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            setSearching(q.trim() || null);
          }}
        >
          <label class="grow">
            <span class="sr-only">{ct('searchMembers')}</span>
            <input type="search" placeholder={ct('searchMembers')} value={q} data-testid="member-search" onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
          </label>
          <button type="submit">{ct('search')}</button>
          {searching ? (
            <button type="button" onClick={() => (setQ(''), setSearching(null))}>
              {ct('clear')}
            </button>
          ) : null}
        </form>
        <FlashLine flash={act.flash} />
        {!members ? (
          <p class="muted">{ct('loading')}</p>
        ) : members.length === 0 ? (
          <p class="muted">{ct('noMembers')}</p>
        ) : (
          <div class="table-wrap" tabIndex={0} role="region" aria-label={ct('scrollTable')}>
            <table class="grid" data-testid="member-table">
              <thead>
                <tr>
                  <th scope="col">{ct('userid')}</th>
                  <th scope="col">{ct('name')}</th>
                  <th scope="col">{ct('title')}</th>
                  <th scope="col">{ct('status')}</th>
                  <th scope="col">
                    <span class="sr-only">{ct('manage')}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {members.map((m) => (
                  <tr key={m.userid} data-testid="member-row" data-userid={m.userid} data-status={m.status}>
                    <td>{m.userid}</td>
                    <td>{m.name}</td>
                    <td>{m.title}</td>
                    <td>
                      <span class={`status ${m.status}`}>{statusName(m.status)}</span>
                    </td>
                    <td>
                      <button type="button" class="link-btn" data-testid="member-manage" onClick={() => setDialog({ kind: 'member', userid: m.userid })}>
                        {ct('manage')}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {next && !searching ? (
          <button type="button" onClick={() => void loadMembers(true)}>
            {ct('more')}
          </button>
        ) : null}
      </Section>
      {dialog?.kind === 'dept' ? (
        <DeptDialog depts={depts} dept={dialog.edit ? (current ?? null) : null} parent={selected} onClose={() => setDialog(null)} onDone={done} />
      ) : null}
      {dialog?.kind === 'add' ? <AddMemberDialog depts={depts} dept={selected} onClose={() => setDialog(null)} onDone={done} /> : null}
      {dialog?.kind === 'member' ? (
        <MemberDialog userid={dialog.userid} depts={depts} onClose={() => setDialog(null)} onChanged={() => void loadMembers().catch(() => {})} />
      ) : null}
    </div>
  );
}
