import { useEffect, useRef, useState } from 'preact/hooks';
import type { Member } from '../api.ts';
import { t } from '../i18n.ts';
import { errorText, type Store } from '../state.ts';
import { Avatar } from './Avatar.tsx';

/**
 * Choose members from the directory: a search box (name, pinyin,
 * initials: the server matches) and a checkbox list; the chosen ones are
 * shown as removable chips.
 */
export function MemberPicker(props: {
  store: Store;
  selected: Member[];
  onChange: (list: Member[]) => void;
  exclude?: ReadonlySet<string>;
  idPrefix: string;
}) {
  const { store, selected, onChange, exclude, idPrefix } = props;
  const [q, setQ] = useState('');
  const [list, setList] = useState<Member[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const seq = useRef(0);

  const load = async (query: string, after: string | null) => {
    const n = ++seq.current;
    setBusy(true);
    try {
      const r = await store.api.members(query ? { q: query, limit: 50 } : { cursor: after ?? undefined, limit: 50 });
      if (n !== seq.current) return;
      store.rememberPeople(r.members);
      setList(after ? (old) => [...old, ...r.members] : r.members);
      setCursor(r.next_cursor);
      setError(null);
    } catch (e) {
      if (n === seq.current) setError(errorText(e));
    } finally {
      if (n === seq.current) setBusy(false);
    }
  };

  useEffect(() => {
    const h = setTimeout(() => load(q.trim(), null), q ? 250 : 0);
    return () => clearTimeout(h);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q]);

  const me = store.api.userid;
  const shown = list.filter((m) => m.userid !== me && m.status !== 'departed' && !exclude?.has(m.userid));
  const isSel = (u: string) => selected.some((s) => s.userid === u);
  const toggle = (m: Member) => onChange(isSel(m.userid) ? selected.filter((s) => s.userid !== m.userid) : [...selected, m]);

  return (
    <div class="picker">
      <div class="field">
        <label for={`${idPrefix}-q`}>{t('searchDirectory')}</label>
        <input
          id={`${idPrefix}-q`}
          type="search"
          value={q}
          data-testid="picker-search"
          onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        />
      </div>
      <div class="chips" aria-live="polite">
        <span class="muted">{selected.length ? t('selected', { n: selected.length }) : t('noneSelected')}</span>
        {selected.map((m) => (
          <button type="button" key={m.userid} class="chip" onClick={() => toggle(m)} aria-label={`${t('remove')} ${m.name}`}>
            {m.name} ×
          </button>
        ))}
      </div>
      {error && <p class="form-error" role="alert">{error}</p>}
      <ul class="picker-list" aria-label={t('pickMembers')} aria-busy={busy}>
        {shown.map((m) => (
          <li key={m.userid}>
            <label class="picker-item" data-testid="picker-item" data-userid={m.userid}>
              <input type="checkbox" checked={isSel(m.userid)} onChange={() => toggle(m)} />
              <Avatar name={m.name} small />
              <span>{m.name}</span>
              <span class="muted">{m.userid}</span>
            </label>
          </li>
        ))}
      </ul>
      {!busy && !shown.length && <p class="muted">{t('noResults')}</p>}
      {cursor && !q && (
        <button type="button" class="link-btn" onClick={() => load('', cursor)}>
          {t('loadMore')}
        </button>
      )}
    </div>
  );
}
