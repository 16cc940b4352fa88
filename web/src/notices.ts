// Urgent notices (紧急通知) in the client: the member's received notices
// (to acknowledge), those they sent (live counts), and escalations they
// were told of. Events arrive in the notice inbox conversation `n.<me>`.

import type { Api, EventFrame } from './api.ts';

export interface Marks {
  delivered_ms: number | null;
  read_ms: number | null;
  acked_ms: number | null;
  reminded: number;
  escalated: boolean;
}

export interface Counts {
  recipients: number;
  delivered: number;
  read: number;
  acked: number;
  reminded: number;
  reminders: number;
  escalated: number;
  leaders: number;
}

export interface NoticeItem {
  id: number;
  sender: string;
  title: string;
  body: string;
  sent_ms: number;
  deadline_ms: number;
  withdrawn: boolean;
  my?: Marks;
  // the sender's view
  counts?: Counts;
  phase?: string;
  rounds_done?: number;
  next_due_ms?: number | null;
}

export interface Escalation {
  id: number;
  title: string;
  sender: string;
  deadline_ms: number;
  count: number;
  sample: string[];
}

export interface Draft {
  users: string[];
  departments: number[];
  all: boolean;
  title: string;
  body: string;
  deadline_ms: number;
  remind_every_ms: number;
  max_rounds: number;
}

export interface RecipientRow extends Marks {
  userid: string;
  name: string;
}

/** Whether a received notice still asks for an acknowledgement. */
export function needsAck(n: NoticeItem): boolean {
  return !n.withdrawn && !n.my?.acked_ms;
}

export class Notices {
  inbox = new Map<number, NoticeItem>();
  sent = new Map<number, NoticeItem>();
  escalations = new Map<number, Escalation>();
  canSend = false;
  /** The notice shown in the urgent dialog, if any. */
  popup: number | null = null;

  constructor(
    private api: Api,
    private changed: () => void,
  ) {}

  reset(): void {
    this.inbox.clear();
    this.sent.clear();
    this.escalations.clear();
    this.popup = null;
    this.canSend = false;
  }

  unacked(): NoticeItem[] {
    return [...this.inbox.values()].filter(needsAck).sort((a, b) => b.id - a.id);
  }

  async load(): Promise<void> {
    const got = await this.api.call<{ notices: NoticeItem[] }>('GET', '/v1/notices', { query: { limit: 200 } });
    for (const n of got.notices) this.inbox.set(n.id, n);
    if (this.canSend) await this.loadSent();
    // An unacknowledged notice from before this page was opened asks at once.
    const first = this.unacked()[0];
    if (first && this.popup === null) this.popup = first.id;
    this.delivered([...this.inbox.values()].filter((n) => !n.my?.delivered_ms).map((n) => n.id));
    this.changed();
  }

  async loadSent(): Promise<void> {
    const got = await this.api.call<{ notices: NoticeItem[] }>('GET', '/v1/notices', { query: { box: 'sent', limit: 200 } });
    for (const n of got.notices) this.sent.set(n.id, n);
    this.changed();
  }

  private delivered(ids: number[]): void {
    if (!ids.length) return;
    this.api
      .call('POST', '/v1/notices/delivered', { body: { ids: ids.slice(0, 100) }, retry: 'safe' })
      .catch(() => {
        /* a receipt is best effort */
      });
  }

  /** One event of the notice inbox. */
  onEvent(ev: EventFrame): void {
    const id = Number(ev.id ?? (ev.notice as { id?: number } | undefined)?.id ?? 0);
    switch (ev.type) {
      case 'notice': {
        const card = ev.notice as NoticeItem;
        const prev = this.inbox.get(card.id);
        this.inbox.set(card.id, { ...card, withdrawn: false, my: prev?.my });
        if (needsAck(this.inbox.get(card.id)!)) this.popup = card.id;
        this.delivered([card.id]);
        break;
      }
      case 'notice_reminder': {
        const n = this.inbox.get(id);
        if (n && needsAck(n)) {
          n.my = { ...(n.my ?? emptyMarks()), reminded: (n.my?.reminded ?? 0) + 1 };
          this.popup = id;
        }
        break;
      }
      case 'notice_withdrawn': {
        const n = this.inbox.get(id);
        if (n) n.withdrawn = true;
        if (this.popup === id) this.popup = null;
        break;
      }
      case 'notice_marked': {
        const n = this.inbox.get(id);
        if (n) {
          n.my = {
            ...(n.my ?? emptyMarks()),
            read_ms: Number(ev.read_ms) || null,
            acked_ms: Number(ev.acked_ms) || null,
          };
          if (n.my.acked_ms && this.popup === id) this.popup = null;
        }
        break;
      }
      case 'notice_progress': {
        const n = this.sent.get(id);
        if (n) {
          n.counts = ev.counts as Counts;
          n.phase = String(ev.phase);
          if (ev.action === 'withdrawn') n.withdrawn = true;
        } else if (this.canSend) {
          void this.loadSent();
        }
        break;
      }
      case 'notice_escalation': {
        this.escalations.set(id, {
          id,
          title: String(ev.title),
          sender: String(ev.sender),
          deadline_ms: Number(ev.deadline_ms),
          count: Number(ev.count),
          sample: (ev.sample as string[]) ?? [],
        });
        break;
      }
      default:
        return;
    }
    this.changed();
  }

  async ack(id: number): Promise<void> {
    const m = await this.api.call<Marks & { id: number }>('POST', `/v1/notices/${id}/ack`, { retry: 'safe' });
    const n = this.inbox.get(id);
    if (n) n.my = { ...(n.my ?? emptyMarks()), ...m };
    if (this.popup === id) this.popup = null;
    this.changed();
  }

  async read(id: number): Promise<void> {
    const n = this.inbox.get(id);
    if (!n || n.my?.read_ms || n.withdrawn) return;
    const m = await this.api.call<Marks & { id: number }>('POST', `/v1/notices/${id}/read`, { retry: 'safe' });
    n.my = { ...(n.my ?? emptyMarks()), ...m };
    this.changed();
  }

  dismiss(): void {
    this.popup = null;
    this.changed();
  }

  /** Send; the same key on every retry, so a notice goes out once. */
  async send(d: Draft, key: string): Promise<NoticeItem> {
    const n = await this.api.call<NoticeItem>('POST', '/v1/notices', {
      body: {
        to: { users: d.users, departments: d.departments, all: d.all },
        title: d.title,
        body: d.body,
        deadline_ms: d.deadline_ms,
        remind_every_ms: d.remind_every_ms,
        max_rounds: d.max_rounds,
      },
      headers: { 'Idempotency-Key': key },
      retry: 'safe',
    });
    this.sent.set(n.id, n);
    this.changed();
    return n;
  }

  async refresh(id: number): Promise<void> {
    const n = await this.api.call<NoticeItem>('GET', `/v1/notices/${id}`);
    if (this.sent.has(id) || n.counts) this.sent.set(id, n);
    if (this.inbox.has(id)) this.inbox.set(id, { ...this.inbox.get(id)!, ...n });
    this.changed();
  }

  async withdraw(id: number): Promise<void> {
    const n = await this.api.call<NoticeItem>('POST', `/v1/notices/${id}/withdraw`);
    this.sent.set(id, n);
    this.changed();
  }

  recipients(id: number, state: string): Promise<{ recipients: RecipientRow[]; next_cursor: string | null }> {
    return this.api.call('GET', `/v1/notices/${id}/recipients`, { query: { state, limit: 1000 } });
  }
}

function emptyMarks(): Marks {
  return { delivered_ms: null, read_ms: null, acked_ms: null, reminded: 0, escalated: false };
}
