// Attachments on their way to the server: each is uploaded (./upload.ts),
// then sent as a message of its own through the store's outbox. Uploads
// to one conversation go one at a time, in the order attached, so their
// messages arrive in that order. The bytes live only in this page: a
// reload loses an unfinished upload (the server drops its partial copy).
// The upload code itself is a chunk of its own, fetched on the first
// attachment (or when the browser is idle), not with the first load.

import { ApiError, Cancelled, type Api, type SendTarget } from './api.ts';
import type { FileKind, FileView } from './logic/files.ts';
import type { UploadProgress } from './upload.ts';
import { errorText, uuid } from './util.ts';

export interface UploadItem {
  id: string;
  target: SendTarget;
  /** The conversation, once known (a first 1:1 message creates it). */
  convId: string | null;
  blob: Blob;
  name: string;
  kind: FileKind;
  durationMs?: number;
  state: 'uploading' | 'failed';
  progress: UploadProgress;
  /** The server's message (or the network's) when it failed. */
  error: string | null;
  /** Whether trying again may help (not after a refusal: type, size, quota). */
  canRetry: boolean;
  createdAt: number;
  ctrl: AbortController;
}

export interface AttachmentHost {
  changed(): void;
  /** A 1:1 target as its conversation, if one exists. */
  resolve(target: SendTarget): { target: SendTarget; convId: string | null };
  /** The other member of a 1:1 conversation (null for groups). */
  peerOf(convId: string): string | null;
  /** Send the uploaded file as a message. */
  send(target: SendTarget, file: FileView): void;
}

export class Attachments {
  items: UploadItem[] = [];
  private running = new Set<string>();

  constructor(
    private api: Api,
    private host: AttachmentHost,
  ) {}

  add(target: SendTarget, blob: Blob, name: string, kind: FileKind, durationMs?: number): UploadItem {
    const r = this.host.resolve(target);
    const item: UploadItem = {
      id: uuid(),
      target: r.target,
      convId: r.convId,
      blob,
      name,
      kind,
      ...(durationMs !== undefined ? { durationMs } : {}),
      state: 'uploading',
      progress: { loaded: 0, total: blob.size, chunks: null },
      error: null,
      canRetry: false,
      createdAt: Date.now(),
      ctrl: new AbortController(),
    };
    this.items.push(item);
    this.host.changed();
    this.pump(keyOf(item));
    return item;
  }

  /** Uploads shown in a conversation, or in a 1:1 chat not created yet (`direct`). */
  shownIn(convId: string | null, direct?: string): UploadItem[] {
    const peer = convId ? this.host.peerOf(convId) : (direct ?? null);
    return this.items.filter((u) =>
      u.convId ? u.convId === convId : 'direct' in u.target && peer !== null && u.target.direct === peer,
    );
  }

  /** Stop an upload (the server drops its partial copy) and forget it. */
  cancel(id: string): void {
    const u = this.items.find((x) => x.id === id);
    if (!u) return;
    u.ctrl.abort();
    this.items = this.items.filter((x) => x !== u);
    this.host.changed();
  }

  retry(id: string): void {
    const u = this.items.find((x) => x.id === id);
    if (!u || u.state !== 'failed') return;
    u.state = 'uploading';
    u.error = null;
    u.ctrl = new AbortController();
    u.progress = { loaded: 0, total: u.blob.size, chunks: null };
    this.host.changed();
    this.pump(keyOf(u));
  }

  /** Fetch the upload code when the browser has nothing else to do. */
  static prefetch(): void {
    const go = () => {
      import('./upload.ts').catch(() => {
        /* fetched again on the first attachment */
      });
    };
    const idle = (globalThis as { requestIdleCallback?: (fn: () => void, o?: { timeout: number }) => number }).requestIdleCallback;
    if (idle) idle(go, { timeout: 5000 });
    else setTimeout(go, 2000);
  }

  /** Log out: stop everything. */
  reset(): void {
    for (const u of this.items) u.ctrl.abort();
    this.items = [];
  }

  private async pump(key: string): Promise<void> {
    if (this.running.has(key)) return;
    this.running.add(key);
    try {
      for (;;) {
        const u = this.items.find((x) => x.state === 'uploading' && keyOf(x) === key);
        if (!u || !this.api.session.tokens) return;
        await this.run(u);
      }
    } finally {
      this.running.delete(key);
    }
  }

  private async run(u: UploadItem): Promise<void> {
    try {
      const meta = { name: u.name, kind: u.kind, ...(u.durationMs !== undefined ? { durationMs: u.durationMs } : {}) };
      const { upload } = await import('./upload.ts');
      const file = await upload(
        this.api,
        u.blob,
        meta,
        (p) => {
          u.progress = p;
          this.host.changed();
        },
        u.ctrl.signal,
      );
      if (!this.items.includes(u)) return; // cancelled just as it finished
      this.items = this.items.filter((x) => x !== u);
      // The 1:1 conversation may exist by now.
      this.host.send(this.host.resolve(u.target).target, file);
    } catch (e) {
      if (e instanceof Cancelled || !this.items.includes(u)) return;
      u.state = 'failed';
      u.error = errorText(e);
      u.canRetry = !(e instanceof ApiError) || e.status >= 500 || e.status === 429;
      this.host.changed();
    }
  }
}

function keyOf(u: UploadItem): string {
  if (u.convId) return u.convId;
  return 'conv' in u.target ? u.target.conv : `direct:${u.target.direct}`;
}
