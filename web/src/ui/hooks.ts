import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { Store } from '../state.ts';
import { parseRoute, type Route } from '../router.ts';
import { onLangChange } from '../i18n.ts';

export const StoreContext = createContext<Store | null>(null);

/** The store; the component re-renders whenever it changes. */
export function useStore(): Store {
  const store = useContext(StoreContext)!;
  const [, setV] = useState(0);
  useEffect(() => store.subscribe(() => setV((v) => v + 1)), [store]);
  return store;
}

export function useRoute(): Route {
  const [r, setR] = useState<Route>(() => parseRoute(location.hash));
  useEffect(() => {
    const f = () => setR(parseRoute(location.hash));
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  return r;
}

/** Re-render when the UI language changes. */
export function useLang(): void {
  const [, setV] = useState(0);
  useEffect(() => onLangChange(() => setV((v) => v + 1)), []);
}

/** Narrow screens show the list and the chat as separate views. */
export function useNarrow(): boolean {
  const q = '(max-width: 720px)';
  const [n, setN] = useState(() => window.matchMedia(q).matches);
  useEffect(() => {
    const m = window.matchMedia(q);
    const f = () => setN(m.matches);
    m.addEventListener('change', f);
    return () => m.removeEventListener('change', f);
  }, []);
  return n;
}
