import { useEffect, useRef, useState } from 'preact/hooks';
import type { Department, Member } from '../api.ts';
import { t } from '../i18n.ts';
import { href, type Route } from '../router.ts';
import { errorText } from '../state.ts';
import { Avatar } from './Avatar.tsx';
import { useStore } from './hooks.ts';

/** Departments as a tree, the chosen department's members, and search. */
export function Directory({ route }: { route: Route }) {
  const store = useStore();
  const [depts, setDepts] = useState<Department[] | null>(null);
  const [open, setOpen] = useState<Set<number>>(new Set());
  const [dept, setDept] = useState<number | null>(null);
  const [q, setQ] = useState('');
  const [members, setMembers] = useState<Member[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** The query the shown results answer (tests wait for it). */
  const [shownQuery, setShownQuery] = useState('');
  const seq = useRef(0);

  useEffect(() => {
    store.api
      .departments()
      .then((r) => {
        const list = r.departments;
        setDepts(list);
        // Open the roots and the user's own departments' ancestors.
        const byId = new Map(list.map((d) => [d.id, d]));
        const o = new Set<number>();
        for (const d of list) if (d.parent === null || !byId.has(d.parent)) o.add(d.id);
        for (const id of store.me?.departments ?? []) {
          for (let d = byId.get(id); d && d.parent !== null; d = byId.get(d.parent)) o.add(d.parent);
        }
        setOpen(o);
        const mine = store.me?.departments?.[0];
        setDept(mine && byId.has(mine) ? mine : (list[0]?.id ?? null));
      })
      .catch((e) => setError(errorText(e)));
  }, [store]);

  const load = async (after: string | null) => {
    const n = ++seq.current;
    const query = q.trim();
    if (!query && dept === null) return;
    setBusy(true);
    try {
      const r = await store.api.members(query ? { q: query, limit: 100 } : { department: dept!, cursor: after ?? undefined, limit: 100 });
      if (n !== seq.current) return;
      store.rememberPeople(r.members);
      setMembers(after ? (old) => [...old, ...r.members] : r.members);
      setCursor(query ? null : r.next_cursor);
      setShownQuery(query);
      setError(null);
    } catch (e) {
      if (n === seq.current) setError(errorText(e));
    } finally {
      if (n === seq.current) setBusy(false);
    }
  };

  useEffect(() => {
    const h = setTimeout(() => load(null), q ? 250 : 0);
    return () => clearTimeout(h);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q, dept]);

  const children = new Map<number | null, Department[]>();
  const ids = new Set((depts ?? []).map((d) => d.id));
  for (const d of depts ?? []) {
    const p = d.parent !== null && ids.has(d.parent) ? d.parent : null;
    if (!children.has(p)) children.set(p, []);
    children.get(p)!.push(d);
  }
  for (const l of children.values()) l.sort((a, b) => a.order - b.order || a.id - b.id);
  const deptName = (id: number | null) => depts?.find((d) => d.id === id)?.name ?? '';

  const tree = (parent: number | null, level: number) => {
    const list = children.get(parent) ?? [];
    if (!list.length) return null;
    return (
      <ul class="dept-tree">
        {list.map((d) => {
          const kids = children.get(d.id)?.length ?? 0;
          const isOpen = open.has(d.id);
          return (
            <li key={d.id}>
              <div class="dept-row">
                {kids ? (
                  <button
                    type="button"
                    class="icon-btn tiny"
                    aria-label={isOpen ? t('collapse', { name: d.name }) : t('expand', { name: d.name })}
                    aria-expanded={isOpen}
                    onClick={() => {
                      const o = new Set(open);
                      if (isOpen) o.delete(d.id);
                      else o.add(d.id);
                      setOpen(o);
                    }}
                  >
                    {isOpen ? '▾' : '▸'}
                  </button>
                ) : (
                  <span class="tree-pad" aria-hidden="true" />
                )}
                <button
                  type="button"
                  aria-current={dept === d.id && !q ? 'true' : undefined}
                  class={dept === d.id && !q ? 'dept selected' : 'dept'}
                  data-testid="department"
                  data-dept={d.id}
                  onClick={() => {
                    setQ('');
                    setDept(d.id);
                  }}
                >
                  {d.name}
                </button>
              </div>
              {isOpen && tree(d.id, level + 1)}
            </li>
          );
        })}
      </ul>
    );
  };

  const active = route.name === 'user' ? route.userid : null;
  return (
    <div class="pane directory">
      <div class="pane-head">
        <h2 class="pane-title">{t('directory')}</h2>
      </div>
      <form role="search" class="search" onSubmit={(e) => e.preventDefault()}>
        <label for="dir-q" class="sr-only">
          {t('searchDirectory')}
        </label>
        <input
          id="dir-q"
          type="search"
          data-testid="directory-search"
          placeholder={t('searchDirectory')}
          value={q}
          onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        />
      </form>
      {error && <p class="form-error" role="alert">{error}</p>}
      {!q && depts && <nav aria-label={t('departments')}>{tree(null, 1)}</nav>}
      <h3 class="section-title">{q ? t('search') : t('membersOf', { name: deptName(dept) })}</h3>
      <ul class="people" data-testid="directory-results" data-query={shownQuery} aria-busy={busy}>
        {members.map((m) => (
          <li key={m.userid}>
            <a
              href={href({ name: 'user', userid: m.userid })}
              class={active === m.userid ? 'person active' : 'person'}
              aria-current={active === m.userid ? 'true' : undefined}
              data-testid="directory-member"
              data-userid={m.userid}
            >
              <Avatar name={m.name} small />
              <span class="grow">{m.name}</span>
              <span class="muted">{m.title || m.userid}</span>
            </a>
          </li>
        ))}
      </ul>
      {!busy && !members.length && <p class="muted pad">{t('noResults')}</p>}
      {cursor && (
        <button type="button" class="link-btn pad" onClick={() => load(cursor)}>
          {t('loadMore')}
        </button>
      )}
    </div>
  );
}
