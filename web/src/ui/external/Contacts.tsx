// The employee's external contacts pane (contacts, customer groups they
// own, inviting, creating a customer group) and an external account's
// "My contacts" (the employees who serve them).
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Conversation, Member } from '../../api.ts';
import { fullTime } from '../../i18n.ts';
import { inviteUrl } from '../../logic/external.ts';
import { go, href, type Route } from '../../router.ts';
import { errorText, type Store } from '../../state.ts';
import { Avatar } from '../Avatar.tsx';
import { Dialog } from '../Dialog.tsx';
import { MemberPicker } from '../MemberPicker.tsx';
import { HandoverList } from './Handover.tsx';
import { useStore } from '../hooks.ts';
import * as x from './api.ts';
import { xt } from './strings.ts';

/** Ids of the external conversations the store knows: a change (a new contact, a transfer) reloads the lists. */
function externalKey(store: Store): string {
  const ids: string[] = [];
  for (const cs of store.conversations.values()) if (cs.conv.external) ids.push(`${cs.conv.id}:${cs.conv.owner}:${cs.conv.member_count}`);
  return ids.sort().join(',');
}

/** The employee's pane: contacts and owned customer groups, invite, create a group. */
export function ExternalList({ route }: { route: Route }) {
  const store = useStore();
  const [contacts, setContacts] = useState<x.ExternalContact[] | null>(null);
  const [groups, setGroups] = useState<Conversation[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dialog, setDialog] = useState<'invite' | 'group' | null>(null);
  const key = externalKey(store);
  const seq = useRef(0);

  const load = async () => {
    const n = ++seq.current;
    try {
      const [c, g] = await Promise.all([x.contacts(store.api), x.groups(store.api)]);
      if (n !== seq.current) return;
      store.rememberMembers(c.contacts.map((e) => ({ userid: e.userid, name: e.name, external: true, org: e.org, read_seq: 0, delivered_seq: 0 })));
      setContacts(c.contacts);
      setGroups(g.groups);
      setError(null);
    } catch (e) {
      if (n === seq.current) setError(xt('error', { msg: errorText(e) }));
    }
  };
  useEffect(() => {
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  const activeGroup = route.name === 'external-group' ? route.id : null;
  return (
    <div class="pane ext-pane" data-testid="external-list">
      <div class="pane-head">
        <h2 class="pane-title">{xt('externalContacts')}</h2>
        <button type="button" class="link-btn" onClick={() => void load()}>
          {xt('refresh')}
        </button>
      </div>
      <div class="ext-actions">
        {store.canInvite && (
          <button type="button" class="primary small" onClick={() => setDialog('invite')} data-testid="invite-external">
            {xt('invite')}
          </button>
        )}
        <button type="button" class="small" onClick={() => setDialog('group')} data-testid="new-customer-group">
          {xt('newCustomerGroup')}
        </button>
      </div>
      {error && (
        <p class="form-error pad" role="alert">
          {error}
        </p>
      )}
      {!contacts || !groups ? (
        !error && (
          <p class="muted pad" role="status">
            {xt('loading')}
          </p>
        )
      ) : (
        <>
          <h3 class="section-title">{xt('contactsHeading', { n: contacts.length })}</h3>
          {contacts.length === 0 ? (
            <p class="muted pad">{xt('noContacts')}</p>
          ) : (
            <ul class="people" data-testid="external-contacts">
              {contacts.map((c) => (
                <li key={c.userid}>
                  <a
                    class="person"
                    href={c.conversation ? href({ name: 'chat', id: c.conversation }) : undefined}
                    data-testid="ext-contact"
                    data-userid={c.userid}
                    data-conv={c.conversation ?? ''}
                  >
                    <Avatar name={c.name} small />
                    <span class="grow ext-who">
                      <span>
                        {c.name} <span class="tag ext">{c.org}</span>
                      </span>
                      <span class="muted small">
                        {[c.phone, c.email].filter(Boolean).join(' · ') || c.userid}
                        {c.previous ? ` · ${xt('takenOverFrom', { name: store.name(c.previous) })}` : ''}
                      </span>
                    </span>
                  </a>
                </li>
              ))}
            </ul>
          )}
          <h3 class="section-title">{xt('groupsHeading', { n: groups.length })}</h3>
          {groups.length === 0 ? (
            <p class="muted pad">{xt('noGroups')}</p>
          ) : (
            <ul class="people" data-testid="customer-groups">
              {groups.map((g) => (
                <li key={g.id}>
                  <a
                    class={activeGroup === g.id ? 'person active' : 'person'}
                    aria-current={activeGroup === g.id ? 'true' : undefined}
                    href={href({ name: 'external-group', id: g.id })}
                    data-testid="ext-group"
                    data-conv={g.id}
                  >
                    <Avatar name={g.name} group small />
                    <span class="grow">{g.name}</span>
                    <span class="muted">{xt('members', { n: g.member_count })}</span>
                  </a>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      {dialog === 'invite' && <InviteDialog store={store} onClose={() => setDialog(null)} />}
      {dialog === 'group' && (
        <CustomerGroupCreate
          store={store}
          contacts={contacts ?? []}
          onClose={() => setDialog(null)}
          onCreated={(c) => {
            setDialog(null);
            void load();
            go({ name: 'chat', id: c.id });
          }}
        />
      )}
    </div>
  );
}

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** Create a one-time invitation and show its link and code to pass on. */
export function InviteDialog({ store, onClose }: { store: Store; onClose: () => void }) {
  const [inv, setInv] = useState<x.Invitation | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      setInv(await x.invite(store.api));
    } catch (e) {
      setError(xt('error', { msg: errorText(e) }));
    } finally {
      setBusy(false);
    }
  };
  const url = inv ? inviteUrl(location.origin, inv.link) : '';
  const doCopy = async (text: string) => setCopied((await copy(text)) ? xt('copied') : xt('copyFailed'));
  return (
    <Dialog title={xt('invite')} onClose={onClose} testid="invite-dialog">
      <p>{xt('inviteIntro')}</p>
      {!inv ? (
        <div class="form-actions">
          <button type="button" onClick={onClose}>
            {xt('cancel')}
          </button>
          <button type="button" class="primary" disabled={busy} onClick={create} data-testid="invite-create">
            {busy ? xt('creatingInvite') : xt('createInvite')}
          </button>
        </div>
      ) : (
        <>
          <div class="field">
            <label for="inv-link">{xt('inviteLink')}</label>
            <input id="inv-link" readOnly value={url} data-testid="invite-link" onFocus={(e) => (e.target as HTMLInputElement).select()} />
          </div>
          <div class="field">
            <label for="inv-code">{xt('inviteCode')}</label>
            <input id="inv-code" readOnly value={inv.code} data-testid="invite-code" onFocus={(e) => (e.target as HTMLInputElement).select()} />
          </div>
          <p class="muted">{xt('inviteExpires', { time: fullTime(inv.expires_ms) })}</p>
          <p class="notice" role="status">
            {copied ?? ''}
          </p>
          <div class="form-actions">
            <button type="button" onClick={() => void doCopy(url)} data-testid="invite-copy-link">
              {xt('copyLink')}
            </button>
            <button type="button" onClick={() => void doCopy(inv.code)}>
              {xt('copyCode')}
            </button>
            <button type="button" class="primary" onClick={onClose}>
              {xt('close')}
            </button>
          </div>
        </>
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}

/** A customer group: a name, some of my external contacts, some colleagues. */
function CustomerGroupCreate(props: {
  store: Store;
  contacts: x.ExternalContact[];
  onClose: () => void;
  onCreated: (c: Conversation) => void;
}) {
  const { store, contacts } = props;
  const [name, setName] = useState('');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [colleagues, setColleagues] = useState<Member[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return setError(xt('groupNameRequired'));
    const members = [...picked, ...colleagues.map((m) => m.userid)];
    if (!members.length) return setError(xt('pickSomeone'));
    setBusy(true);
    setError(null);
    try {
      const c = await x.createGroup(store.api, name.trim(), members);
      store.adoptConversation(c);
      props.onCreated(c);
    } catch (err) {
      setError(xt('error', { msg: errorText(err) }));
      setBusy(false);
    }
  };
  const toggle = (u: string) => {
    const s = new Set(picked);
    if (s.has(u)) s.delete(u);
    else s.add(u);
    setPicked(s);
  };
  return (
    <Dialog title={xt('newCustomerGroup')} onClose={props.onClose} testid="customer-group-create" wide>
      <form onSubmit={submit}>
        <div class="field">
          <label for="cg-name">{xt('groupName')}</label>
          <input
            id="cg-name"
            data-testid="cg-name"
            required
            maxLength={64}
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </div>
        <fieldset class="ext-pick">
          <legend>{xt('pickContacts')}</legend>
          {contacts.length === 0 ? (
            <p class="muted">{xt('noContacts')}</p>
          ) : (
            <ul class="picker-list">
              {contacts.map((c) => (
                <li key={c.userid}>
                  <label class="picker-item" data-testid="cg-contact" data-userid={c.userid}>
                    <input type="checkbox" checked={picked.has(c.userid)} onChange={() => toggle(c.userid)} />
                    <Avatar name={c.name} small />
                    <span>{c.name}</span>
                    <span class="muted">{c.org}</span>
                  </label>
                </li>
              ))}
            </ul>
          )}
        </fieldset>
        <h3 class="ext-sub">{xt('addColleagues')}</h3>
        <MemberPicker store={store} selected={colleagues} onChange={setColleagues} idPrefix="cg" />
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="form-actions">
          <button type="button" onClick={props.onClose}>
            {xt('cancel')}
          </button>
          <button type="submit" class="primary" disabled={busy} data-testid="cg-create">
            {busy ? xt('creating') : xt('create')}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** An external account's pane: the hand-overs it may object to, the employees who serve them (never the directory). */
export function MyContacts() {
  const store = useStore();
  const [list, setList] = useState<x.ServingEmployee[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = externalKey(store);
  useEffect(() => {
    let live = true;
    x.contacts<x.ServingEmployee>(store.api).then(
      (r) => {
        if (!live) return;
        store.rememberMembers(r.contacts.map((e) => ({ userid: e.userid, name: e.name, read_seq: 0, delivered_seq: 0 })));
        setList(r.contacts);
        setError(null);
      },
      (e) => live && setError(xt('error', { msg: errorText(e) })),
    );
    return () => {
      live = false;
    };
  }, [key, store]);
  return (
    <div class="pane ext-pane" data-testid="my-contacts">
      <div class="pane-head">
        <h2 class="pane-title">{xt('myContacts')}</h2>
      </div>
      <HandoverList />
      <p class="muted pad">{xt('myContactsIntro')}</p>
      {error && (
        <p class="form-error pad" role="alert">
          {error}
        </p>
      )}
      {!list ? (
        !error && (
          <p class="muted pad" role="status">
            {xt('loading')}
          </p>
        )
      ) : list.length === 0 ? (
        <p class="muted pad">{xt('noServers')}</p>
      ) : (
        <ul class="people">
          {list.map((e) => (
            <li key={e.userid}>
              <a
                class="person"
                href={e.conversation ? href({ name: 'chat', id: e.conversation }) : undefined}
                data-testid="my-contact"
                data-userid={e.userid}
              >
                <Avatar name={e.name} small />
                <span class="grow">{e.name}</span>
                <span class="muted">{e.title}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
