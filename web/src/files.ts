// Bytes of attachments for display: `<img src>` and `<audio src>` cannot
// send the Bearer header, so thumbnails, opened images and voice notes are
// fetched with it (`Api.fileBytes`) and shown through object URLs.
//
// One cache per session, keyed by file id (and thumbnail or not). An entry
// in use by a view on screen is never dropped; unused ones stay for when
// the user scrolls back, up to a small bound (count and bytes), after
// which the least recently used are revoked. At most a few fetches run at
// once, so opening a chat full of pictures does not flood a thin link.
// Downloads (the save button) are not cached: they can be large.

import { Cancelled, isTransient, type Api } from './api.ts';

export type Variant = 'thumbnail' | 'full';

interface Entry {
  key: string;
  id: string;
  variant: Variant;
  refs: number;
  blob: Blob | null;
  url: string | null;
  /** Same bytes as a `data:` URL (for pages whose policy refuses `blob:` images). */
  dataUrl: string | null;
  error: unknown;
  loading: Promise<void> | null;
  /** Last use, for LRU eviction. */
  used: number;
  listeners: Set<() => void>;
}

/** What a view sees of one entry. */
export interface FileState {
  url: string | null;
  error: unknown;
  loading: boolean;
}

const MAX_ENTRIES = 60;
const MAX_BYTES = 48 * 1024 * 1024;
const PARALLEL = 3;

export class FileCache {
  private entries = new Map<string, Entry>();
  private running = 0;
  private queue: (() => void)[] = [];
  private clock = 0;
  private ctrl = new AbortController();

  constructor(private api: Api) {}

  /**
   * Use an entry while a view shows it: starts the fetch if needed; call
   * the returned function when the view goes away.
   */
  acquire(id: string, variant: Variant, onChange: () => void): () => void {
    const e = this.entry(id, variant);
    e.refs++;
    e.used = ++this.clock;
    e.listeners.add(onChange);
    // A refusal (403, 404: recalled or deleted) stays; a network failure is tried again.
    if (!e.url && !e.loading && (!e.error || isTransient(e.error))) {
      e.error = null;
      this.load(e);
    }
    return () => {
      e.refs = Math.max(0, e.refs - 1);
      e.listeners.delete(onChange);
      this.trim();
    };
  }

  state(id: string, variant: Variant): FileState {
    const e = this.entries.get(key(id, variant));
    return { url: e?.dataUrl ?? e?.url ?? null, error: e?.error ?? null, loading: !!e?.loading };
  }

  /** Try a failed entry again. */
  retry(id: string, variant: Variant): void {
    const e = this.entries.get(key(id, variant));
    if (!e || e.loading) return;
    e.error = null;
    this.load(e);
  }

  /**
   * The page refused to show a `blob:` URL (an older node's policy allows
   * only `data:` images): show the same bytes as a `data:` URL instead.
   */
  async fallbackToDataUrl(id: string, variant: Variant): Promise<void> {
    const e = this.entries.get(key(id, variant));
    if (!e?.blob || e.dataUrl) return;
    const blob = e.blob;
    e.dataUrl = await new Promise<string>((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result));
      r.onerror = () => reject(r.error);
      r.readAsDataURL(blob);
    });
    this.emit(e);
  }

  /** Log out: drop everything and stop what is loading. */
  clear(): void {
    this.ctrl.abort();
    this.ctrl = new AbortController();
    for (const e of this.entries.values()) if (e.url) URL.revokeObjectURL(e.url);
    this.entries.clear();
    this.queue = [];
  }

  private entry(id: string, variant: Variant): Entry {
    const k = key(id, variant);
    let e = this.entries.get(k);
    if (!e) {
      e = { key: k, id, variant, refs: 0, blob: null, url: null, dataUrl: null, error: null, loading: null, used: 0, listeners: new Set() };
      this.entries.set(k, e);
    }
    return e;
  }

  private load(e: Entry): void {
    const signal = this.ctrl.signal;
    e.loading = (async () => {
      await this.slot();
      try {
        const blob = await this.api.fileBytes(e.id, { thumbnail: e.variant === 'thumbnail', signal });
        if (this.entries.get(e.key) !== e) return; // cleared meanwhile
        e.blob = blob;
        e.url = URL.createObjectURL(blob);
      } catch (err) {
        if (!(err instanceof Cancelled)) e.error = err;
      } finally {
        this.running--;
        this.queue.shift()?.();
        e.loading = null;
        this.emit(e);
        this.trim();
      }
    })();
    this.emit(e);
  }

  private async slot(): Promise<void> {
    if (this.running >= PARALLEL) await new Promise<void>((r) => this.queue.push(r));
    this.running++;
  }

  private emit(e: Entry): void {
    for (const fn of e.listeners) fn();
  }

  /** Drop unused entries, oldest first, while over the bound. */
  private trim(): void {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.blob?.size ?? 0;
    if (this.entries.size <= MAX_ENTRIES && bytes <= MAX_BYTES) return;
    const unused = [...this.entries.values()].filter((e) => e.refs === 0 && !e.loading).sort((a, b) => a.used - b.used);
    for (const e of unused) {
      if (this.entries.size <= MAX_ENTRIES && bytes <= MAX_BYTES) break;
      bytes -= e.blob?.size ?? 0;
      if (e.url) URL.revokeObjectURL(e.url);
      this.entries.delete(e.key);
    }
  }
}

function key(id: string, variant: Variant): string {
  return `${variant}:${id}`;
}

/**
 * Save a file: fetch it with the token (progress as it arrives), then hand
 * it to the browser's download with its name. The object URL is revoked
 * once the browser has taken it.
 */
export async function saveFile(
  api: Api,
  id: string,
  name: string,
  opts: { signal?: AbortSignal; onProgress?: (loaded: number, total: number | null) => void } = {},
): Promise<void> {
  const blob = await api.fileBytes(id, opts);
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
