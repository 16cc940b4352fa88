// Hand-overs an external account may object to: when a department leader
// (or an administrator) hands a contact to another employee, the contact
// is told in their 1:1 (a `system:handover` notice) and may object until
// the window ends (`due_ms`); then they stay with the employee who serves
// them now. Only an external account's session loads these; the list is
// read on load, after each (re)connect and whenever a hand-over notice
// arrives (a new hand-over, one cancelled, one carried out). Loaded with
// the external-contact chunk (an employee's session never needs it).

import { ApiError, type Api, type Message } from './api.ts';
import { HANDOVER_SENDER, handoversToShow, takeoverName, type Handover, type Transfer } from './logic/handover.ts';

export type { Handover, Transfer };

/** What the hand-overs need of the store. */
export interface HandoverHost {
  api: Api;
  changed(): void;
  /** The external account's 1:1 with this employee, with what is loaded of it. */
  contactWith(employee: string): { conv: { id: string; last_seq: number }; log: { all(): readonly Message[] }; lastMessage: Message | null } | undefined;
  /** A name the session already knows (member lists), or null. */
  knownName(userid: string): string | null;
}

/** setTimeout's longest delay is 2^31 - 1 ms; look again at least hourly. */
const MAX_WAIT_MS = 3_600_000;

export class Handovers {
  /** What to show, soonest first (see `handoversToShow`). */
  shown: Handover[] = [];
  loaded = false;

  private waiting: Transfer[] = [];
  private objected = new Map<number, Transfer>();
  private dismissed = new Set<number>();
  /** Who takes over, by transfer id, read from its notice. */
  private names = new Map<number, string>();
  private looked = new Set<number>();
  private seq = 0;
  private soon: ReturnType<typeof setTimeout> | null = null;
  private dueTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private host: HandoverHost) {}

  reset(): void {
    this.seq++;
    this.shown = [];
    this.loaded = false;
    this.waiting = [];
    this.objected.clear();
    this.dismissed.clear();
    this.names.clear();
    this.looked.clear();
    if (this.soon) clearTimeout(this.soon);
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.soon = this.dueTimer = null;
  }

  /** The hand-overs of the employee `from` (the banner of that 1:1). */
  forEmployee(from: string): Handover[] {
    return this.shown.filter((h) => h.t.from === from);
  }

  /** A hand-over notice arrived, or the stream caught up: read the list again shortly (once for a burst). */
  refreshSoon(delayMs = 200): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      void this.refresh();
    }, delayMs);
  }

  /** A live message: hand-over notices change the list. */
  onMessage(m: Message): void {
    if (m.sender === HANDOVER_SENDER) this.refreshSoon();
  }

  async refresh(): Promise<void> {
    const n = ++this.seq;
    try {
      const r = await this.host.api.call<{ transfers: Transfer[] }>('GET', '/v1/external/transfers');
      if (n !== this.seq) return;
      this.waiting = r.transfers ?? [];
      this.loaded = true;
      this.update();
    } catch {
      // Shown as it was; the next notice, reconnect or due time tries again.
      if (n === this.seq) this.armDue(60_000);
    }
  }

  /**
   * Object to hand-over `id`: the contact stays with the employee who
   * serves them now. Repeating it changes nothing, so it is retried like a
   * read. Throws the server's refusal (`already_decided` when it ended
   * meanwhile; the list is then read again).
   */
  async object(id: number): Promise<Transfer> {
    try {
      const t = await this.host.api.call<Transfer>('POST', `/v1/external/transfers/${encodeURIComponent(String(id))}/object`, {
        retry: 'safe',
      });
      this.objected.set(t.id, t);
      this.update();
      return t;
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'already_decided' || e.status === 404)) this.refreshSoon(0);
      throw e;
    }
  }

  /** Hide the note of an objected hand-over. */
  dismiss(id: number): void {
    this.dismissed.add(id);
    this.update();
  }

  /** Who takes over: a name the session knows, else the one in the notice, else the login id. */
  toName(t: Transfer): string {
    const known = this.names.get(t.id) ?? this.host.knownName(t.to);
    if (known) return known;
    const cs = this.host.contactWith(t.from);
    if (cs) {
      const loaded = cs.log.all();
      const name = takeoverName(cs.lastMessage ? [...loaded, cs.lastMessage] : loaded, t);
      if (name) {
        this.names.set(t.id, name);
        return name;
      }
      this.lookUp(t, cs.conv.id, cs.conv.last_seq);
    }
    return t.to;
  }

  /** Read the latest messages of the 1:1 for the notice (once per hand-over). */
  private lookUp(t: Transfer, conv: string, lastSeq: number): void {
    if (this.looked.has(t.id)) return;
    this.looked.add(t.id);
    const n = this.seq;
    setTimeout(async () => {
      try {
        const r = await this.host.api.messages(conv, Math.max(0, lastSeq - 100), 100);
        const name = takeoverName(r.messages, t);
        if (name && n === this.seq) {
          this.names.set(t.id, name);
          this.host.changed();
        }
      } catch {
        /* the login id stays */
      }
    }, 0);
  }

  private update(): void {
    this.shown = handoversToShow(this.waiting, this.objected, this.dismissed, this.host.api.userid ?? '', Date.now());
    this.armDue();
    this.host.changed();
  }

  /** Look again when the soonest window ends (then it is carried out, or an objection note goes). */
  private armDue(fallbackMs?: number): void {
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueTimer = null;
    const now = Date.now();
    let next = fallbackMs ?? Infinity;
    for (const h of this.shown) next = Math.min(next, Math.max(0, h.t.due_ms - now) + 2000);
    if (next === Infinity) return;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = null;
      void this.refresh();
    }, Math.min(next, MAX_WAIT_MS));
  }
}
