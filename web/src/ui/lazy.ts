// Views that load on demand (their own chunk and stylesheet, from the
// page's node), so the first load stays small: the announcement and
// approval views, the picture viewer and voice recorder, and the
// external-contact views (with the invitation's acceptance page). Once the page
// is up they are also fetched when the browser is idle, so they still open
// if the page's node goes away later.
import { useEffect, useState } from 'preact/hooks';

export type OfficeViews = typeof import('./office/index.tsx');
export type FileViews = typeof import('./files/index.tsx');
export type ExternalViews = typeof import('./external/index.tsx');

interface Chunk<T> {
  load(): Promise<T>;
  /** Fetch it when the browser has nothing else to do. */
  prefetch(): void;
  /** The views once loaded (null while loading); `failed` when the load failed. */
  use(wanted: boolean): { views: T | null; failed: boolean; retry: () => void };
}

function chunk<T>(importer: () => Promise<T>): Chunk<T> {
  let views: T | null = null;
  let loading: Promise<T> | null = null;
  const waiting = new Set<() => void>();
  const load = (): Promise<T> => {
    if (!loading) {
      loading = importer().then(
        (m) => {
          views = m;
          for (const fn of waiting) fn();
          return m;
        },
        (e) => {
          loading = null;
          throw e;
        },
      );
    }
    return loading;
  };
  return {
    load,
    prefetch() {
      const go = () => {
        load().catch(() => {
          /* loaded again when needed */
        });
      };
      const idle = (globalThis as { requestIdleCallback?: (fn: () => void, o?: { timeout: number }) => number }).requestIdleCallback;
      if (idle) idle(go, { timeout: 5000 });
      else setTimeout(go, 2000);
    },
    use(wanted: boolean) {
      const [, setV] = useState(0);
      const [failed, setFailed] = useState(false);
      const [attempt, setAttempt] = useState(0);
      useEffect(() => {
        if (!wanted || views) return;
        let live = true;
        const fn = () => live && setV((v) => v + 1);
        waiting.add(fn);
        setFailed(false);
        load().catch(() => live && setFailed(true));
        return () => {
          live = false;
          waiting.delete(fn);
        };
      }, [wanted, attempt]);
      return { views, failed, retry: () => setAttempt((a) => a + 1) };
    },
  };
}

const office = chunk(() => import('./office/index.tsx'));
const files = chunk(() => import('./files/index.tsx'));
const external = chunk(() => import('./external/index.tsx'));

export const loadOffice = office.load;
export const prefetchOffice = office.prefetch;
export const useOffice = office.use;

export const prefetchFiles = files.prefetch;
export const useFiles = files.use;

export const loadExternal = external.load;
export const prefetchExternal = external.prefetch;
export const useExternal = external.use;
