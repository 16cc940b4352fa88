import { useEffect, useState } from 'preact/hooks';
import type { Member } from '../api.ts';
import { t } from '../i18n.ts';
import { go } from '../router.ts';
import { errorText, type ConvState, type Store } from '../state.ts';
import { Avatar } from './Avatar.tsx';
import { Dialog } from './Dialog.tsx';
import { MemberPicker } from './MemberPicker.tsx';
import { useStore } from './hooks.ts';

/** Group settings: name, announcement, members (add, remove, admins, owner), leave, dissolve. */
export function GroupSettings({ cs, onClose }: { cs: ConvState; onClose: () => void }) {
  const store = useStore();
  const me = store.api.userid ?? '';
  const c = cs.conv;
  const isOwner = c.owner === me;
  const isAdmin = isOwner || c.admins.includes(me);
  const [name, setName] = useState(c.name);
  const [announcement, setAnnouncement] = useState(c.announcement);
  const [adding, setAdding] = useState<Member[]>([]);
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!cs.members) store.loadMembers(cs).catch(() => {});
  }, [cs, store]);

  const run = async (f: () => Promise<unknown>, after?: () => void) => {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      const r = await f();
      store.applyConv(r);
      await store.loadMembers(cs).catch(() => {});
      setStatus(t('saved'));
      after?.();
    } catch (e) {
      setError(t('actionFailed', { msg: errorText(e) }));
    } finally {
      setBusy(false);
    }
  };

  const members = cs.members ? [...cs.members.keys()] : [];
  members.sort((a, b) => rank(b) - rank(a) || store.name(a).localeCompare(store.name(b)));
  function rank(u: string) {
    return u === c.owner ? 2 : c.admins.includes(u) ? 1 : 0;
  }

  return (
    <Dialog title={t('groupInfo')} onClose={onClose} testid="group-settings-dialog" wide>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (name.trim() && name.trim() !== c.name) run(() => store.api.updateConversation(c.id, { name: name.trim() }));
        }}
      >
        <div class="field">
          <label for="gs-name">{t('groupName')}</label>
          <input id="gs-name" data-testid="gs-name" value={name} maxLength={64} disabled={!isAdmin}
            onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        {isAdmin && (
          <button type="submit" disabled={busy} data-testid="gs-rename">
            {t('save')}
          </button>
        )}
      </form>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          run(() => store.api.updateConversation(c.id, { announcement }));
        }}
      >
        <div class="field">
          <label for="gs-ann">{t('announcement')}</label>
          <textarea id="gs-ann" data-testid="gs-announcement" rows={2} value={announcement} disabled={!isAdmin}
            onInput={(e) => setAnnouncement((e.target as HTMLTextAreaElement).value)} />
        </div>
        {isAdmin && (
          <button type="submit" disabled={busy} data-testid="gs-announce">
            {t('save')}
          </button>
        )}
      </form>
      {status && <p class="notice" role="status">{status}</p>}
      {error && <p class="form-error" role="alert">{error}</p>}
      <h3>
        {t('members')} ({c.member_count})
      </h3>
      <ul class="member-list" data-testid="gs-members">
        {members.map((u) => (
          <li key={u} data-userid={u}>
            <Avatar name={store.name(u)} small />
            <span class="grow">
              {store.name(u)} <span class="muted">{u}</span>
              {store.orgOf(u) !== null && (
                <span class="tag ext" data-testid="gs-external">
                  {store.orgOf(u) ? t('externalOrg', { org: store.orgOf(u)! }) : t('externalTag')}
                </span>
              )}
              {u === c.owner && <span class="tag">{t('owner')}</span>}
              {c.admins.includes(u) && <span class="tag">{t('admin')}</span>}
            </span>
            {isOwner && u !== me && (
              <button type="button" class="link-btn" disabled={busy}
                onClick={() => run(() => store.api.setAdmins(c.id, c.admins.includes(u) ? c.admins.filter((a) => a !== u) : [...c.admins, u]))}>
                {c.admins.includes(u) ? t('unmakeAdmin') : t('makeAdmin')}
              </button>
            )}
            {isOwner && u !== me && (
              <button type="button" class="link-btn" disabled={busy} onClick={() => run(() => store.api.setOwner(c.id, u))}>
                {t('makeOwner')}
              </button>
            )}
            {isAdmin && u !== me && u !== c.owner && (
              <button type="button" class="link-btn danger" disabled={busy} data-testid="gs-remove"
                aria-label={t('removeMember', { name: store.name(u) })}
                onClick={() => run(() => store.api.removeMember(c.id, u))}>
                {t('remove')}
              </button>
            )}
          </li>
        ))}
      </ul>
      {isAdmin && (
        <section class="add-members" aria-labelledby="gs-add-h">
          <h3 id="gs-add-h">{t('addMembers')}</h3>
          <MemberPicker store={store} selected={adding} onChange={setAdding} exclude={new Set(members)} idPrefix="gs" />
          <button type="button" class="primary" disabled={busy || !adding.length} data-testid="gs-add"
            onClick={() => run(() => store.api.addMembers(c.id, adding.map((m) => m.userid)), () => setAdding([]))}>
            {t('add')}
          </button>
          {c.kind === 'customer' && !store.external && (
            <ContactPicker store={store} exclude={new Set(members)} busy={busy}
              onAdd={(ids) => run(() => store.api.addMembers(c.id, ids))} />
          )}
        </section>
      )}
      <div class="form-actions danger-zone">
        {!isOwner && (
          <button type="button" class="danger" disabled={busy}
            onClick={() => {
              if (confirm(t('confirmLeave'))) run(() => store.leaveGroup(c.id), () => { onClose(); go({ name: 'chats' }); });
            }}>
            {t('leaveGroup')}
          </button>
        )}
        {isOwner && (
          <button type="button" class="danger" disabled={busy}
            onClick={() => {
              if (confirm(t('confirmDissolve'))) run(() => store.api.dissolve(c.id), onClose);
            }}>
            {t('dissolveGroup')}
          </button>
        )}
      </div>
    </Dialog>
  );
}

/** A customer group's manager adds some of their own external contacts (the server takes only those). */
function ContactPicker(props: { store: Store; exclude: ReadonlySet<string>; busy: boolean; onAdd: (ids: string[]) => void }) {
  const { store, exclude } = props;
  const [list, setList] = useState<{ userid: string; name: string; org: string }[] | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  useEffect(() => {
    store.api
      .call<{ contacts: { userid: string; name: string; org: string }[] }>('GET', '/v1/external/contacts')
      .then((r) => setList(r.contacts), () => setList([]));
  }, [store]);
  const shown = (list ?? []).filter((x) => !exclude.has(x.userid));
  if (!shown.length) return null;
  return (
    <fieldset class="gs-contacts">
      <legend>{t('externalContacts')}</legend>
      <ul class="picker-list">
        {shown.map((x) => (
          <li key={x.userid}>
            <label class="picker-item" data-testid="gs-contact" data-userid={x.userid}>
              <input type="checkbox" checked={picked.includes(x.userid)}
                onChange={() => setPicked(picked.includes(x.userid) ? picked.filter((u) => u !== x.userid) : [...picked, x.userid])} />
              <Avatar name={x.name} small />
              <span>{x.name}</span>
              <span class="tag ext">{x.org}</span>
            </label>
          </li>
        ))}
      </ul>
      <button type="button" class="primary" disabled={props.busy || !picked.length} data-testid="gs-add-contacts"
        onClick={() => {
          props.onAdd(picked);
          setPicked([]);
        }}>
        {t('add')}
      </button>
    </fieldset>
  );
}
