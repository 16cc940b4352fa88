import { useEffect, useState } from 'preact/hooks';
import type { Department, Member } from '../api.ts';
import { t } from '../i18n.ts';
import { go } from '../router.ts';
import { errorText } from '../state.ts';
import { Avatar } from './Avatar.tsx';
import { useNarrow, useStore } from './hooks.ts';

export function Profile({ userid }: { userid: string }) {
  const store = useStore();
  const narrow = useNarrow();
  const [m, setM] = useState<Member | null>(store.people.get(userid) ?? null);
  const [depts, setDepts] = useState<Department[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    store.api.member(userid).then(setM, (e) => setError(errorText(e)));
    store.api.departments().then((r) => setDepts(r.departments), () => {});
  }, [userid, store]);
  const me = store.api.userid;
  const start = () => {
    const cs = store.directWith(userid);
    go(cs ? { name: 'chat', id: cs.conv.id } : { name: 'direct', userid });
  };
  const status = m?.status === 'active' ? t('statusActive') : m?.status === 'disabled' ? t('statusDisabled') : t('statusDeparted');
  return (
    <section class="profile" aria-labelledby="profile-name" data-testid="profile">
      {narrow && (
        <button type="button" class="icon-btn" aria-label={t('back')} onClick={() => go({ name: 'contacts' })}>
          ‹
        </button>
      )}
      {error && <p class="form-error" role="alert">{error}</p>}
      {m && (
        <>
          <div class="profile-head">
            <Avatar name={m.name} />
            <div>
              <h2 id="profile-name" data-testid="profile-name">
                {m.name}
              </h2>
              <p class="muted">{m.userid}</p>
            </div>
          </div>
          <dl class="profile-fields">
            <dt>{t('title')}</dt>
            <dd>{m.title || '—'}</dd>
            <dt>{t('department')}</dt>
            <dd>{m.departments.map((d) => depts.find((x) => x.id === d)?.name ?? `#${d}`).join('、') || '—'}</dd>
            <dt>{t('email')}</dt>
            <dd>{m.email || '—'}</dd>
            <dt>{t('mobile')}</dt>
            <dd>{m.mobile || '—'}</dd>
            <dt>{t('status')}</dt>
            <dd>{status}</dd>
          </dl>
          {m.userid !== me && m.status === 'active' && (
            <button type="button" class="primary" onClick={start} data-testid="start-chat">
              {t('sendMessage')}
            </button>
          )}
        </>
      )}
      {!m && !error && <p role="status">{t('loading')}</p>}
    </section>
  );
}
