// What the announcement and approval views do with the server (loaded with
// them); the state they change is the store's `office` (../../office.ts).
import { ApiError, NetworkError, type Api } from '../../api.ts';
import type { SubmitValue } from '../../logic/approvals.ts';
import type { AnnDraft, Announcement, Approval, Office, Reader, ReaderState, Template } from '../../office.ts';
import { uuid } from '../../state.ts';

// ----------------------------------------------------------- announcements

/** Pinned ones (not withdrawn, pinned until later than now) first; newest first within each group. */
export function announcementOrder(list: Iterable<Announcement>, now = Date.now()): { pinned: Announcement[]; rest: Announcement[] } {
  const all = [...list].sort((a, b) => b.sent_ms - a.sent_ms || b.id - a.id);
  const pinned = (a: Announcement) => !a.withdrawn && a.pinned_until_ms > now;
  return { pinned: all.filter(pinned), rest: all.filter((a) => !pinned(a)) };
}

export async function loadSent(o: Office, more = false): Promise<void> {
  const got = await o.api.call<{ announcements: Announcement[]; next_cursor: number | null }>('GET', '/v1/announcements', {
    query: { box: 'sent', limit: 50, cursor: more ? o.sentNext : undefined },
  });
  for (const a of got.announcements) o.sent.set(a.id, a);
  o.sentNext = got.next_cursor;
  o.sentLoaded = true;
  o.changed();
}

/** An announcement with its body (and, for the sender, the counts). */
export async function openAnnouncement(o: Office, id: number): Promise<Announcement> {
  const a = await o.api.call<Announcement>('GET', `/v1/announcements/${id}`);
  o.details.set(id, a);
  if (o.sent.has(id)) o.sent.set(id, { ...o.sent.get(id)!, ...a, body: undefined });
  const inb = o.inbox.get(id);
  if (inb) o.inbox.set(id, { ...inb, ...a, body: undefined, read_ms: a.read_ms || inb.read_ms || 0, late: inb.late });
  o.changed();
  return a;
}

/** Gone for everyone (410 withdrawn): kept only as withdrawn. */
export function markWithdrawn(o: Office, id: number): void {
  for (const m of [o.inbox, o.sent, o.details]) {
    const a = m.get(id);
    if (a) m.set(id, { ...a, withdrawn: true, pinned: false });
  }
  o.changed();
}

/** Counted once by the server; a repeat answers `already`. */
export async function markRead(o: Office, id: number): Promise<void> {
  const r = await o.api.call<{ id: number; read_ms: number; already: boolean }>('POST', `/v1/announcements/${id}/read`, {
    retry: 'safe',
  });
  for (const m of [o.inbox, o.details]) {
    const a = m.get(id);
    if (a) m.set(id, { ...a, read_ms: r.read_ms });
  }
  o.changed();
}

export async function publish(o: Office, d: AnnDraft): Promise<Announcement> {
  const body: Record<string, unknown> = {
    to: d.all ? { all: true } : { departments: d.departments },
    title: d.title,
    body: d.body,
  };
  if (d.attachment) body.attachment = d.attachment;
  if (d.pinned_until_ms) body.pinned_until_ms = d.pinned_until_ms;
  // One key per publish: a retry after a failover publishes it once.
  const a = await o.api.call<Announcement>('POST', '/v1/announcements', {
    body,
    headers: { 'Idempotency-Key': uuid() },
    retry: 'safe',
  });
  o.sent.set(a.id, a);
  o.details.set(a.id, a);
  o.changed();
  return a;
}

export async function withdrawAnnouncement(o: Office, id: number): Promise<void> {
  const a = await o.api.call<Announcement>('POST', `/v1/announcements/${id}/withdraw`);
  o.sent.set(id, a);
  const d = o.details.get(id);
  o.details.set(id, { ...d, ...a, body: d?.body });
  o.changed();
}

export function readers(o: Office, id: number, state: ReaderState, cursor?: string | null): Promise<{ readers: Reader[]; next_cursor: string | null }> {
  return o.api.call('GET', `/v1/announcements/${id}/readers`, { query: { state, cursor, limit: 500 } });
}

/**
 * A file the API serves (a CSV export): fetched with the token (a plain
 * link would carry none), from the current node, failing over like a read.
 */
async function fetchBlob(api: Api, path: string): Promise<Blob> {
  let last: unknown = null;
  for (let attempt = 0; attempt < Math.max(2, api.pool.all.length); attempt++) {
    await api.ensureFresh();
    const node = api.pool.current;
    let res: Response;
    try {
      res = await fetch(new URL(path, node), {
        headers: api.accessToken ? { Authorization: `Bearer ${api.accessToken}` } : {},
        credentials: 'omit',
        cache: 'no-store',
        mode: 'cors',
      });
    } catch (e) {
      last = new NetworkError(node, e instanceof Error ? e.message : String(e));
      api.pool.failover(node);
      continue;
    }
    if (res.ok) return res.blob();
    const err = ((await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText);
  }
  throw last;
}

/** The readers' CSV. */
export function readersCsv(o: Office, id: number): Promise<Blob> {
  return fetchBlob(o.api, `/v1/announcements/${id}/readers.csv`);
}

// --------------------------------------------------------------- approvals

export async function loadTemplates(o: Office): Promise<Template[]> {
  const got = await o.api.call<{ templates: Template[] }>('GET', '/v1/approvals/templates');
  o.templates = got.templates.filter((t) => !t.disabled);
  o.changed();
  return o.templates;
}

export async function file(o: Office, template: string, values: Record<string, SubmitValue>): Promise<Approval> {
  const r = await o.api.call<Approval>('POST', '/v1/approvals', {
    body: { template, values },
    headers: { 'Idempotency-Key': uuid() },
    retry: 'safe',
  });
  o.requests.set(r.id, r);
  o.refreshBoxes();
  return r;
}

/** Approve, reject, comment or withdraw; approve and reject name the step seen. */
export async function act(o: Office, r: Approval, action: 'approve' | 'reject' | 'comment' | 'withdraw', text = ''): Promise<Approval> {
  const body =
    action === 'approve'
      ? { step: r.step, ...(text ? { comment: text } : {}) }
      : action === 'reject'
        ? { step: r.step, reason: text }
        : action === 'comment'
          ? { text }
          : {};
  const got = await o.api.call<Approval>('POST', `/v1/approvals/${r.id}/${action}`, { body });
  o.requests.set(got.id, got);
  o.refreshBoxes();
  return got;
}
