// Announcements (公告) and approvals (审批) in the client: the lists, the
// nav badges (unread announcements, requests waiting for me) and live
// updates. Their events arrive in the notice inbox conversation `n.<me>`
// (`announcement_published`, `announcement_read`, `approval_update`). The views and the
// actions (publish, read, approve, …: ui/office/actions.ts) load on demand.

import type { Api, EventFrame } from './api.ts';
import type { Block } from './logic/richtext.ts';
import type { FieldDef } from './logic/approvals.ts';

// ----------------------------------------------------------- announcements

export interface Attachment {
  name: string;
  url: string;
  size: number;
}

export interface AnnCounts {
  audience: number;
  read: number;
  unread: number;
  late_read: number;
}

export interface Announcement {
  id: number;
  sender: string;
  sender_name: string;
  title: string;
  sent_ms: number;
  pinned_until_ms: number;
  pinned: boolean;
  attachment: Attachment | null;
  to: { all: boolean; departments: number[] };
  sending: boolean;
  withdrawn: boolean;
  withdrawn_ms: number;
  counts?: AnnCounts;
  body?: Block[];
  /** 0 = unread (inbox only). */
  read_ms?: number;
  /** Pinned, published before I joined (not counted as unread for the sender). */
  late?: boolean;
}

export interface AnnDraft {
  all: boolean;
  departments: number[];
  title: string;
  body: Block[];
  attachment: { name: string; url: string } | null;
  pinned_until_ms: number;
}

export interface Reader {
  userid: string;
  name: string;
  read_ms: number;
  late: boolean;
}

export type ReaderState = 'read' | 'unread' | 'late' | 'all';

// --------------------------------------------------------------- approvals

export type Box = 'waiting' | 'mine' | 'done' | 'cc';
export const BOXES: readonly Box[] = ['waiting', 'mine', 'done', 'cc'];

export interface Template {
  id: string;
  name: string;
  fields: FieldDef[];
  flow: ({ leaders: number } | { user: string } | { any_of: string[] })[];
  cc: string[];
  disabled: boolean;
  version: number;
}

export type StepRule = { leader_level: number } | { user: string } | { any_of: string[] };

export interface TrailEntry {
  time_ms: number;
  actor: string;
  step: number;
  action: 'submitted' | 'assigned' | 'reassigned' | 'skipped' | 'approved' | 'rejected' | 'commented' | 'withdrawn';
  approvers?: string[];
  from?: string[];
  to?: string[];
  why?: string;
  comment?: string;
  reason?: string;
  text?: string;
}

export interface Approval {
  id: number;
  template: string;
  template_name: string;
  applicant: string;
  applicant_name: string;
  department: number;
  values: { key: string; label: string; type: string; value: string }[];
  submitted_ms: number;
  status: 'pending' | 'approved' | 'rejected' | 'withdrawn';
  /** 1-based current step. */
  step: number;
  steps: StepRule[];
  approvers: { userid: string; name: string }[];
  cc: string[];
  finished_ms: number;
  trail: TrailEntry[];
}

interface Page<T> {
  items: T[];
  next: number | null;
  loaded: boolean;
}

const PAGE = 50;

export class Office {
  // announcements
  inbox = new Map<number, Announcement>();
  inboxNext: number | null = null;
  sent = new Map<number, Announcement>();
  sentNext: number | null = null;
  sentLoaded = false;
  /** Full announcements (with body) by id, as last fetched. */
  details = new Map<number, Announcement>();
  canPublish = false;
  // approvals
  boxes = new Map<Box, Page<Approval>>();
  requests = new Map<number, Approval>();
  templates: Template[] | null = null;
  /** The tab of the approvals list. */
  box: Box = 'waiting';

  private loadFailed = false;
  private inboxTimer: ReturnType<typeof setTimeout> | null = null;
  private approvalTimer: ReturnType<typeof setTimeout> | null = null;
  private touched = new Set<number>();

  constructor(
    readonly api: Api,
    readonly changed: () => void,
  ) {}

  reset(): void {
    for (const h of [this.inboxTimer, this.approvalTimer]) if (h) clearTimeout(h);
    this.inboxTimer = this.approvalTimer = null;
    this.touched.clear();
    this.inbox.clear();
    this.sent.clear();
    this.details.clear();
    this.boxes.clear();
    this.requests.clear();
    this.templates = null;
    this.inboxNext = this.sentNext = null;
    this.sentLoaded = false;
    this.canPublish = false;
    this.box = 'waiting';
  }

  /** After login: the inbox's first page and what waits for me (the badges). */
  async load(): Promise<void> {
    this.loadFailed = false;
    try {
      await Promise.all([this.loadInbox(), this.loadBox('waiting')]);
    } catch (e) {
      this.loadFailed = true;
      throw e;
    }
  }

  /** The stream is live again: load what a failed first load missed (events cover the rest). */
  synced(): void {
    if (this.loadFailed) this.load().catch(() => {});
  }

  // ------------------------------------------------------- announcements

  /** Unread, not withdrawn: the nav badge. */
  unreadAnnouncements(): number {
    let n = 0;
    for (const a of this.inbox.values()) if (!a.read_ms && !a.withdrawn) n++;
    return n;
  }

  async loadInbox(more = false): Promise<void> {
    const got = await this.api.call<{ announcements: Announcement[]; next_cursor: number | null }>('GET', '/v1/announcements', {
      query: { box: 'inbox', limit: PAGE, cursor: more ? this.inboxNext : undefined },
    });
    for (const a of got.announcements) {
      const prev = this.inbox.get(a.id);
      // A read mark only moves forward (a page may be older than a read).
      this.inbox.set(a.id, { ...a, read_ms: a.read_ms || prev?.read_ms || 0, late: a.late ?? prev?.late });
    }
    if (!more || got.announcements.length) this.inboxNext = got.next_cursor;
    this.changed();
  }

  // ----------------------------------------------------------- approvals

  /** Requests waiting for me: the nav badge. */
  waitingCount(): number {
    return this.boxes.get('waiting')?.items.length ?? 0;
  }

  /** More than the loaded page waits (shown as 99+). */
  waitingMore(): boolean {
    return this.boxes.get('waiting')?.next != null;
  }

  async loadBox(box: Box, more = false): Promise<void> {
    const cur = this.boxes.get(box);
    // A refresh reloads as many as are shown (up to the server's maximum page).
    const limit = more ? PAGE : Math.min(200, Math.max(PAGE, cur?.items.length ?? 0));
    const got = await this.api.call<{ approvals: Approval[]; next_cursor: number | null }>('GET', '/v1/approvals', {
      query: { box, limit, cursor: more ? cur?.next : undefined },
    });
    const items = more && cur ? [...cur.items, ...got.approvals.filter((r) => !cur.items.some((x) => x.id === r.id))] : got.approvals;
    this.boxes.set(box, { items, next: got.next_cursor, loaded: true });
    for (const r of got.approvals) if (this.requests.has(r.id)) this.requests.set(r.id, r);
    this.changed();
  }

  async request(id: number): Promise<Approval> {
    const r = await this.api.call<Approval>('GET', `/v1/approvals/${id}`);
    this.requests.set(id, r);
    this.changed();
    return r;
  }

  /** Reload the loaded tabs (and always what waits for me). */
  refreshBoxes(): void {
    const boxes = new Set<Box>(['waiting']);
    for (const b of this.boxes.keys()) boxes.add(b);
    for (const b of boxes) this.loadBox(b).catch(() => {});
    this.changed();
  }

  // -------------------------------------------------------------- events

  /** One event of the notice inbox; false when it is not one of ours. */
  onEvent(ev: EventFrame): boolean {
    if (ev.type === 'announcement_published') {
      const card = ev.announcement as Pick<Announcement, 'id' | 'sender' | 'title' | 'sent_ms' | 'pinned_until_ms'>;
      if (card && typeof card.id === 'number' && !this.inbox.has(card.id)) {
        this.inbox.set(card.id, {
          ...card,
          sender_name: '',
          pinned: card.pinned_until_ms > Date.now(),
          attachment: null,
          to: { all: false, departments: [] },
          sending: false,
          withdrawn: false,
          withdrawn_ms: 0,
          read_ms: 0,
        });
      }
      // The list's page has the rest (the sender's name, the attachment).
      if (!this.inboxTimer) {
        this.inboxTimer = setTimeout(() => {
          this.inboxTimer = null;
          this.loadInbox().catch(() => {});
        }, 300);
      }
      this.changed();
      return true;
    }
    if (ev.type === 'announcement_read') {
      // Read on another device or tab: the badge follows.
      const a = this.inbox.get(Number(ev.id));
      if (a && !a.read_ms) {
        a.read_ms = Number(ev.read_ms) || Date.now();
        this.changed();
      }
      return true;
    }
    if (ev.type === 'approval_update') {
      const id = Number(ev.id);
      if (id) this.touched.add(id);
      if (!this.approvalTimer) {
        this.approvalTimer = setTimeout(() => {
          this.approvalTimer = null;
          const ids = [...this.touched];
          this.touched.clear();
          this.refreshBoxes();
          for (const i of ids) if (this.requests.has(i)) this.request(i).catch(() => {});
        }, 250);
      }
      return true;
    }
    return false;
  }
}
