// The announcement and approval views load on demand (their own chunk and
// stylesheet, from the page's node), so the first load stays small. Once
// the page is up they are also fetched when the browser is idle, so they
// still open if the page's node goes away later.
import { useEffect, useState } from 'preact/hooks';

export type OfficeViews = typeof import('./office/index.tsx');

let views: OfficeViews | null = null;
let loading: Promise<OfficeViews> | null = null;
const waiting = new Set<() => void>();

export function loadOffice(): Promise<OfficeViews> {
  if (!loading) {
    loading = import('./office/index.tsx').then(
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
}

/** Fetch the views when the browser has nothing else to do. */
export function prefetchOffice(): void {
  const go = () => {
    loadOffice().catch(() => {
      /* loaded again when needed */
    });
  };
  const idle = (globalThis as { requestIdleCallback?: (fn: () => void, o?: { timeout: number }) => number }).requestIdleCallback;
  if (idle) idle(go, { timeout: 5000 });
  else setTimeout(go, 2000);
}

/** The views once loaded (null while loading); `failed` when the load failed. */
export function useOffice(wanted: boolean): { views: OfficeViews | null; failed: boolean; retry: () => void } {
  const [, setV] = useState(0);
  const [failed, setFailed] = useState(false);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!wanted || views) return;
    let live = true;
    const fn = () => live && setV((v) => v + 1);
    waiting.add(fn);
    setFailed(false);
    loadOffice().catch(() => live && setFailed(true));
    return () => {
      live = false;
      waiting.delete(fn);
    };
  }, [wanted, attempt]);
  return { views, failed, retry: () => setAttempt((a) => a + 1) };
}
