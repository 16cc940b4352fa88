import { useState } from 'preact/hooks';
import type { Member } from '../api.ts';
import { t } from '../i18n.ts';
import { go } from '../router.ts';
import { errorText } from '../state.ts';
import { Dialog } from './Dialog.tsx';
import { MemberPicker } from './MemberPicker.tsx';
import { useStore } from './hooks.ts';

export function GroupCreate({ onClose }: { onClose: () => void }) {
  const store = useStore();
  const [name, setName] = useState('');
  const [members, setMembers] = useState<Member[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!name.trim()) return setError(t('groupNameRequired'));
    setBusy(true);
    setError(null);
    try {
      const id = await store.createGroup(name.trim(), members.map((m) => m.userid));
      onClose();
      go({ name: 'chat', id });
    } catch (err) {
      setError(t('actionFailed', { msg: errorText(err) }));
      setBusy(false);
    }
  };
  return (
    <Dialog title={t('createGroup')} onClose={onClose} testid="group-create" wide>
      <form onSubmit={submit}>
        <div class="field">
          <label for="group-name">{t('groupName')}</label>
          <input
            id="group-name"
            data-testid="group-name"
            required
            maxLength={64}
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </div>
        <MemberPicker store={store} selected={members} onChange={setMembers} idPrefix="gc" />
        {error && <p class="form-error" role="alert">{error}</p>}
        <div class="form-actions">
          <button type="button" onClick={onClose}>
            {t('cancel')}
          </button>
          <button type="submit" class="primary" disabled={busy} data-testid="group-create-submit">
            {busy ? t('creating') : t('create')}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
