// Application state: the session, conversations and their messages, the
// outbox, names of people. One mutable store; views subscribe and are
// re-rendered (batched per animation frame) when it changes.

import {
  Api,
  ApiError,
  NetworkError,
  NodePool,
  Session,
  isTransient,
  type Conversation,
  type ConvMember,
  type Member,
  type Message,
  type SendBody,
  type SendTarget,
  type Tokens,
} from './api.ts';
import { EventStream, type StreamStatus } from './stream.ts';
import { Notices } from './notices.ts';
import { Office } from './office.ts';
import type { Handovers } from './handovers.ts';
import { loadExternal } from './ui/lazy.ts';
import type { EventFrame } from './logic/cursor.ts';
import { MessageLog, latestPage, olderPage } from './logic/messages.ts';
import type { FileView } from './logic/files.ts';
import { FileCache } from './files.ts';
import { Attachments } from './attachments.ts';
import { errorText, uuid } from './util.ts';
import { t } from './i18n.ts';
import { systemSender } from './logic/external.ts';

export { systemSender };

export { errorText, uuid };

export const PAGE = 50;
/** The default recall window (policy `recall_window_ms`). */
export const RECALL_WINDOW_MS = 2 * 60_000;
/** How long a send is retried automatically before it shows as failed. */
const SEND_GIVE_UP_MS = 5 * 60_000;

export interface ConvState {
  conv: Conversation;
  /** The other member of a 1:1 conversation. */
  peer: string | null;
  lastMessage: Message | null;
  log: MessageLog;
  /** Members with their read markers; null until loaded. */
  members: Map<string, ConvMember> | null;
  loadingOlder: boolean;
  loadingPage: boolean;
  fillingGap: boolean;
  draft: string;
  /** Changes whenever anything of this conversation changes. */
  version: number;
}

export interface OutboxItem {
  /** The client_msg_id: generated once per typed message, reused on every retry. */
  id: string;
  target: SendTarget;
  /** The conversation, once known (a first 1:1 message creates it). */
  convId: string | null;
  body: SendBody;
  state: 'sending' | 'failed';
  error: string | null;
  createdAt: number;
  attempts: number;
  /** A live event already showed this message (its answer is still on its way). */
  matchedSeq: number | null;
  /** The attachment it carries (`body.file` is its id). */
  file?: FileView;
}

export type Phase = 'login' | 'password' | 'loading' | 'ready';

const OUTBOX_KEY = 'enclave.outbox';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Store {
  readonly pool: NodePool;
  readonly api: Api;
  phase: Phase = 'login';
  me: Member | null = null;
  /** A message for the login screen (session ended, …). */
  notice: string | null = null;
  conversations = new Map<string, ConvState>();
  outbox: OutboxItem[] = [];
  /** Attachments being uploaded (then sent through the outbox). */
  readonly uploads: Attachments;
  /** Thumbnails, opened images and voice notes of this session. */
  readonly files: FileCache;
  /** Directory entries by userid (names for display). */
  people = new Map<string, Member>();
  /** External accounts seen in member lists: userid → organization. */
  orgs = new Map<string, string>();
  /** This session is an external account's (a contact from outside): no directory, no internal groups. */
  external = false;
  /** May invite external contacts (`external:add`). */
  canInvite = false;
  /** The login id to put in the login form (after accepting an invitation). */
  loginHint = '';
  /** Urgent notices (the notice inbox `n.<me>`). */
  urgent: Notices;
  /** Announcements and approvals (their events also arrive in `n.<me>`). */
  office: Office;
  /** An external account's waiting hand-overs (to object to); loaded with the external-contact chunk, null for employees. */
  handovers: Handovers | null = null;
  streamStatus: StreamStatus = 'stopped';
  streamNode = '';
  /** The conversation on screen (marked read while visible). */
  openConv: string | null = null;
  version = 0;

  private stream: EventStream | null = null;
  private listeners = new Set<() => void>();
  private scheduled = false;
  private pendingPeople = new Set<string>();
  private peopleTimer: ReturnType<typeof setTimeout> | null = null;
  private pumping = new Set<string>();
  private readTimer: ReturnType<typeof setTimeout> | null = null;
  private refetching = new Set<string>();

  constructor(origin: string, storage: Storage | null) {
    this.pool = new NodePool(origin);
    this.api = new Api(this.pool, new Session(storage));
    this.api.onSessionEnded = () => this.reset('session');
    this.pool.onChange(() => this.changed());
    this.urgent = new Notices(this.api, () => this.changed());
    this.office = new Office(this.api, () => this.changed());
    this.files = new FileCache(this.api);
    this.uploads = new Attachments(this.api, {
      changed: () => this.changed(),
      resolve: (target) => this.resolveTarget(target),
      peerOf: (convId) => {
        const cs = this.conversations.get(convId);
        return cs?.conv.kind === 'direct' ? cs.peer : null;
      },
      send: (target, file) => this.send(target, '', [], null, false, file),
    });
  }

  // ---------------------------------------------------------- plumbing

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Something changed: re-render once per frame. */
  changed(): void {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    };
    if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') {
      requestAnimationFrame(run);
    } else {
      setTimeout(run, 0);
    }
  }

  private touch(cs: ConvState): void {
    cs.version++;
    this.changed();
  }

  // ----------------------------------------------------------- session

  /** Start: resume a session kept in this tab, or show the login. */
  async start(): Promise<void> {
    window.addEventListener('online', () => this.nudge());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        this.nudge();
        this.scheduleRead();
      }
    });
    if (this.api.session.tokens) {
      this.api.setTokens(this.api.session.tokens);
      await this.boot();
    } else {
      this.phase = 'login';
      this.changed();
    }
  }

  async login(userid: string, password: string): Promise<void> {
    const t: Tokens = await this.api.login(userid, password);
    this.api.setTokens({ ...t, userid: t.userid ?? userid });
    this.notice = null;
    if (t.must_change_password) {
      this.phase = 'password';
      this.changed();
      return;
    }
    await this.boot();
  }

  async changePassword(oldPw: string, newPw: string): Promise<void> {
    await this.api.changePassword(oldPw, newPw);
    if (this.phase === 'password') await this.boot();
  }

  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } catch {
      /* the token is dropped locally either way */
    }
    this.reset(null);
  }

  private reset(reason: 'session' | null): void {
    this.stream?.stop();
    this.stream = null;
    this.api.setTokens(null);
    this.conversations.clear();
    this.urgent.reset();
    this.office.reset();
    this.handovers?.reset();
    this.handovers = null;
    this.outbox = [];
    this.saveOutbox();
    this.uploads.reset();
    this.files.clear();
    this.me = null;
    this.external = false;
    this.canInvite = false;
    this.orgs.clear();
    this.openConv = null;
    this.phase = 'login';
    this.notice = reason;
    this.changed();
  }

  /** After login: who am I, the nodes, the conversations, then live events. */
  private async boot(): Promise<void> {
    this.phase = 'loading';
    this.changed();
    let me;
    try {
      me = await this.api.me();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // reset already
      // Cannot load now: stay on the loading screen and try again.
      await sleep(2000);
      if (this.api.session.tokens) return this.boot();
      return;
    }
    this.me = me.member;
    this.external = me.external === true;
    this.canInvite = !this.external && (me.permissions ?? []).includes('external:add');
    this.people.set(me.member.userid, me.member);
    if (me.must_change_password) {
      this.phase = 'password';
      this.changed();
      return;
    }
    try {
      const nodes = await this.api.nodes();
      if (nodes && nodes.length) this.pool.set(nodes);
    } catch {
      /* only this node then */
    }
    // Subscribe from the head read before the list: every event after the
    // list's snapshot arrives on the stream (applying it twice is harmless).
    const head = String(me.sync_head ?? 0);
    try {
      await this.loadConversations();
    } catch {
      /* shown empty; the stream still fills it in */
    }
    this.loadOutbox();
    // An external account: the hand-overs it may object to.
    if (this.external) this.loadHandovers();
    // Urgent notices, announcements and approvals are the organization's
    // own: an external account has none of them.
    if (!this.external) {
      this.urgent.canSend = (me.permissions ?? []).includes('notice:urgent');
      this.urgent.load().catch(() => {
        /* the stream still brings new ones */
      });
      this.office.canPublish = (me.permissions ?? []).includes('announcement:publish');
      this.office.load().catch(() => {
        /* the stream still brings new ones */
      });
    }
    this.phase = 'ready';
    this.changed();
    this.stream = new EventStream(
      this.api,
      {
        onEvent: (ev) => this.applyEvent(ev),
        onStatus: (s, node) => {
          this.streamStatus = s;
          this.streamNode = node;
          this.changed();
        },
        onSynced: () => {
          // Caught up after a (re)connect: fill what a gap may have skipped.
          if (this.openConv) this.fillGap(this.openConv);
          this.pumpAll();
          this.office.synced();
          // A hand-over notice may have come while the stream was away.
          if (this.external) this.loadHandovers();
        },
      },
      head,
    );
    this.stream.start();
    this.pumpAll();
    this.fillSummaries();
  }

  private nudge(): void {
    this.stream?.nudge();
    this.pumpAll();
  }

  // ------------------------------------------------------ conversations

  private async loadConversations(): Promise<void> {
    let cursor: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = await this.api.conversations(cursor);
      for (const c of page.conversations) this.upsertConv(c);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    this.changed();
  }

  private upsertConv(c: Conversation): ConvState {
    let cs = this.conversations.get(c.id);
    if (!cs) {
      cs = {
        conv: c,
        peer: c.peer ?? null,
        lastMessage: c.last_message ?? null,
        log: new MessageLog(),
        members: null,
        loadingOlder: false,
        loadingPage: false,
        fillingGap: false,
        draft: '',
        version: 0,
      };
      this.conversations.set(c.id, cs);
    } else {
      const old = cs.conv;
      cs.conv = {
        ...old,
        ...c,
        // Markers and counters only move forward (a stale answer must not undo an event).
        last_seq: Math.max(old.last_seq, c.last_seq),
        read_seq: Math.max(old.read_seq ?? 0, c.read_seq ?? 0),
      };
      if (c.peer) cs.peer = c.peer;
      if (c.last_message && (!cs.lastMessage || c.last_message.seq >= cs.lastMessage.seq)) {
        cs.lastMessage = c.last_message;
      }
    }
    if (cs.peer) this.wantPerson(cs.peer);
    this.touch(cs);
    return cs;
  }

  /** Conversations, newest activity first (the notice inbox is not a chat). */
  sortedConversations(): ConvState[] {
    return [...this.conversations.values()].filter((cs) => cs.conv.kind !== 'notice').sort((a, b) => activity(b) - activity(a) || (a.conv.id < b.conv.id ? -1 : 1));
  }

  unread(cs: ConvState): number {
    return Math.max(0, cs.conv.last_seq - (cs.conv.read_seq ?? 0));
  }

  /** A 1:1 conversation with this member, if one is known. */
  directWith(userid: string): ConvState | undefined {
    for (const cs of this.conversations.values()) {
      if (cs.conv.kind === 'direct' && cs.peer === userid) return cs;
    }
    return undefined;
  }

  /**
   * An external account's hand-overs: their code comes with the
   * external-contact chunk (not fetched before it is needed); once loaded,
   * the list is read (and read again on each call: a reconnect).
   */
  private loadHandovers(): void {
    if (this.handovers) {
      this.handovers.refreshSoon();
      return;
    }
    const me = this.me;
    loadExternal().then(
      (m) => {
        // Still this session (not logged out meanwhile), and not made by an earlier call.
        if (!this.external || this.me !== me || this.handovers) return;
        this.handovers = new m.Handovers({
          api: this.api,
          changed: () => this.changed(),
          contactWith: (employee) => this.contactWith(employee),
          knownName: (userid) => {
            const p = this.people.get(userid);
            return p && p.name && p.name !== userid ? p.name : null;
          },
        });
        void this.handovers.refresh();
      },
      () => {
        /* the next reconnect tries again */
      },
    );
  }

  /** An external account's 1:1 with this employee (who serves them), if known. */
  contactWith(employee: string): ConvState | undefined {
    for (const cs of this.conversations.values()) {
      if (cs.conv.kind === 'contact' && cs.peer === employee) return cs;
    }
    return undefined;
  }

  /** Fill in what the list route does not give: 1:1 peers and last messages. */
  private async fillSummaries(): Promise<void> {
    const todo = [...this.conversations.values()].filter(
      (cs) => (isPair(cs.conv) && !cs.peer) || (cs.conv.external && !cs.members) || (cs.conv.last_seq > 0 && !cs.lastMessage),
    );
    const worker = async () => {
      for (let cs = todo.shift(); cs; cs = todo.shift()) {
        try {
          // External conversations: the member list carries the names.
          if (cs.conv.external && !cs.members) await this.loadMembers(cs);
          else if (isPair(cs.conv) && !cs.peer) await this.resolvePeer(cs);
          if (cs.conv.last_seq > 0 && !cs.lastMessage) await this.loadLastMessage(cs);
        } catch {
          /* shown without it */
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  private async resolvePeer(cs: ConvState): Promise<void> {
    const r = await this.api.convMembers(cs.conv.id);
    this.rememberMembers(r.members);
    const me = this.api.userid;
    const other = r.members.find((m) => m.userid !== me);
    if (other) {
      cs.peer = other.userid;
      this.wantPerson(other.userid);
    }
    if (!cs.members) cs.members = new Map(r.members.map((m) => [m.userid, m]));
    this.touch(cs);
  }

  private async loadLastMessage(cs: ConvState): Promise<void> {
    const seq = cs.conv.last_seq;
    const r = await this.api.messages(cs.conv.id, seq - 1, 1);
    const m = r.messages[r.messages.length - 1];
    if (m && (!cs.lastMessage || m.seq >= cs.lastMessage.seq)) {
      cs.lastMessage = m;
      this.touch(cs);
    }
  }

  /** The conversation was shown on screen (or hidden: null). */
  async open(id: string | null): Promise<void> {
    this.openConv = id;
    if (!id) return;
    let cs = this.conversations.get(id);
    if (!cs) {
      try {
        cs = this.upsertConv(await this.api.conversation(id));
      } catch {
        return;
      }
    }
    const work: Promise<unknown>[] = [];
    if (!cs.log.loaded && !cs.loadingPage) work.push(this.loadLatest(cs));
    if (!cs.members) work.push(this.loadMembers(cs));
    await Promise.all(work);
    this.scheduleRead();
  }

  private async loadLatest(cs: ConvState): Promise<void> {
    cs.loadingPage = true;
    this.touch(cs);
    try {
      const p = latestPage(cs.conv.last_seq, PAGE);
      if (cs.conv.last_seq === 0) {
        cs.log.mergePage([]);
      } else {
        const r = await this.api.messages(cs.conv.id, p.after_seq, p.limit);
        cs.log.mergePage(r.messages);
        const last = r.messages[r.messages.length - 1];
        if (last) this.noteMessage(cs, last);
        if (r.next_after_seq) await this.fillGap(cs.conv.id);
      }
    } finally {
      cs.loadingPage = false;
      this.touch(cs);
    }
  }

  async loadMembers(cs: ConvState): Promise<void> {
    const map = new Map<string, ConvMember>();
    let cursor: string | undefined;
    for (let i = 0; i < 20; i++) {
      const r = await this.api.convMembers(cs.conv.id, cursor);
      this.rememberMembers(r.members);
      for (const m of r.members) map.set(m.userid, m);
      if (!r.next_cursor) break;
      cursor = r.next_cursor;
    }
    // Keep markers that moved on while this was loading.
    if (cs.members) {
      for (const [u, m] of cs.members) {
        const n = map.get(u);
        if (n) n.read_seq = Math.max(n.read_seq, m.read_seq);
      }
    }
    cs.members = map;
    // A contact's 1:1 changes hands with a transfer: its peer is whoever is there now.
    if (isPair(cs.conv) && (!cs.peer || !map.has(cs.peer))) {
      const other = [...map.keys()].find((u) => u !== this.api.userid);
      if (other) cs.peer = other;
    }
    for (const u of map.keys()) this.wantPerson(u);
    this.touch(cs);
  }

  /** Scrolled to the top: the page before the loaded ones. */
  async loadOlder(id: string): Promise<void> {
    const cs = this.conversations.get(id);
    if (!cs || cs.loadingOlder || !cs.log.loaded) return;
    const p = olderPage(cs.log.lo, PAGE);
    if (!p) return;
    cs.loadingOlder = true;
    this.touch(cs);
    try {
      const r = await this.api.messages(id, p.after_seq, p.limit);
      cs.log.mergePage(r.messages);
    } finally {
      cs.loadingOlder = false;
      this.touch(cs);
    }
  }

  /** Messages after the newest loaded one (after a gap in live events). */
  async fillGap(id: string): Promise<void> {
    const cs = this.conversations.get(id);
    if (!cs || !cs.log.loaded || cs.fillingGap) return;
    cs.fillingGap = true;
    try {
      for (let i = 0; i < 50; i++) {
        const r = await this.api.messages(id, cs.log.hi, 500);
        cs.log.mergePage(r.messages);
        const last = r.messages[r.messages.length - 1];
        if (last) this.noteMessage(cs, last);
        if (!r.next_after_seq || !r.messages.length) break;
      }
    } catch {
      /* the next live event or reconnect tries again */
    } finally {
      cs.fillingGap = false;
      this.touch(cs);
    }
  }

  /** Counters and preview for a message now known. */
  private noteMessage(cs: ConvState, m: Message): void {
    if (m.seq > cs.conv.last_seq) cs.conv = { ...cs.conv, last_seq: m.seq };
    if (!cs.lastMessage || m.seq >= cs.lastMessage.seq) cs.lastMessage = m;
    // The sender has read what they sent (the server moves their marker; no read event).
    this.noteRead(cs, m.sender, m.seq);
  }

  private noteRead(cs: ConvState, userid: string, seq: number): void {
    if (userid === this.api.userid && seq > (cs.conv.read_seq ?? 0)) {
      cs.conv = { ...cs.conv, read_seq: seq };
    }
    if (cs.members) {
      const m = cs.members.get(userid);
      if (m && seq > m.read_seq) cs.members.set(userid, { ...m, read_seq: seq, delivered_seq: Math.max(m.delivered_seq, seq) });
    }
  }

  // ------------------------------------------------------------- events

  /** One live event (already deduplicated by the stream's cursor). */
  applyEvent(ev: EventFrame): void {
    if (ev.type.startsWith('notice')) {
      this.urgent.onEvent(ev);
      return;
    }
    if (this.office.onEvent(ev)) return;
    const id = ev.conversation;
    const cs = this.conversations.get(id);
    const me = this.api.userid;
    switch (ev.type) {
      case 'message': {
        const m = ev.message as Message;
        if (this.external) this.handovers?.onMessage(m);
        if (!cs) {
          this.refetchConv(id);
          return;
        }
        this.noteMessage(cs, m);
        const r = cs.log.applyLive(m);
        if (r === 'gap') this.fillGap(id);
        if (m.sender === me) this.matchOutbox(m);
        if (m.sender !== me && (m.mentions.includes(me ?? '') || m.mention_all)) {
          /* shown as a mention marker in the list */
        }
        this.wantPerson(m.sender);
        this.touch(cs);
        if (id === this.openConv) this.scheduleRead();
        return;
      }
      case 'recalled': {
        const seq = Number(ev.seq);
        if (!cs) return;
        cs.log.recall(seq);
        if (cs.lastMessage?.seq === seq) cs.lastMessage = { ...cs.lastMessage, recalled: true, text: '', file: null };
        this.touch(cs);
        return;
      }
      case 'read': {
        if (!cs) return;
        this.noteRead(cs, String(ev.userid), Number(ev.seq));
        this.touch(cs);
        return;
      }
      case 'created': {
        const members = (ev.members as string[]) ?? [];
        if (!cs) {
          this.refetchConv(id, ev.kind === 'direct' || ev.kind === 'contact' ? members.find((u) => u !== me) : undefined);
        } else if (isPair(cs.conv) && !cs.peer) {
          cs.peer = members.find((u) => u !== me) ?? null;
          this.touch(cs);
        }
        return;
      }
      case 'members_added': {
        const userids = (ev.userids as string[]) ?? [];
        if (!cs || userids.includes(me ?? '')) {
          this.refetchConv(id);
          return;
        }
        if (cs.members) for (const u of userids) if (!cs.members.has(u)) cs.members.set(u, { userid: u, read_seq: 0, delivered_seq: 0 });
        for (const u of userids) this.wantPerson(u);
        this.refetchConv(id);
        this.touch(cs);
        return;
      }
      case 'member_removed':
      case 'member_left': {
        const u = String(ev.userid);
        if (!cs) return;
        if (u === me) {
          this.conversations.delete(id);
          this.changed();
          return;
        }
        cs.members?.delete(u);
        if (cs.peer === u && cs.conv.kind === 'contact') cs.peer = null;
        this.refetchConv(id);
        this.touch(cs);
        return;
      }
      case 'owner_changed':
        if (cs) {
          cs.conv = { ...cs.conv, owner: String(ev.owner) };
          this.touch(cs);
        }
        return;
      case 'admins_changed':
        if (cs) {
          cs.conv = { ...cs.conv, admins: (ev.admins as string[]) ?? [] };
          this.touch(cs);
        }
        return;
      case 'renamed':
        if (cs) {
          cs.conv = { ...cs.conv, name: String(ev.name) };
          this.touch(cs);
        }
        return;
      case 'announcement':
        if (cs) {
          cs.conv = { ...cs.conv, announcement: String(ev.text) };
          this.touch(cs);
        }
        return;
      case 'dissolved':
        if (cs) {
          cs.conv = { ...cs.conv, dissolved: true };
          this.touch(cs);
        }
        return;
      default:
        return;
    }
  }

  /** Re-read a conversation (membership changed, or it is new to us). */
  private refetchConv(id: string, peer?: string): void {
    if (this.refetching.has(id)) return;
    this.refetching.add(id);
    setTimeout(async () => {
      try {
        const c = await this.api.conversation(id);
        const cs = this.upsertConv(c);
        if (peer && !cs.peer) cs.peer = peer;
        if (cs.members || cs.conv.external) await this.loadMembers(cs);
        else if (isPair(cs.conv) && !cs.peer) await this.resolvePeer(cs);
        if (cs.conv.last_seq > 0 && !cs.lastMessage) await this.loadLastMessage(cs);
        for (const o of this.outbox) {
          if (!o.convId && 'direct' in o.target && o.target.direct === cs.peer) o.convId = cs.conv.id;
        }
      } catch (e) {
        if (e instanceof ApiError && (e.code === 'not_a_member' || e.code === 'not_found')) {
          this.conversations.delete(id);
        }
      } finally {
        this.refetching.delete(id);
        this.changed();
      }
    }, 50);
  }

  // ------------------------------------------------------------ reading

  /** Mark the open conversation read (debounced) while the page is visible. */
  scheduleRead(): void {
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      this.markOpenRead();
    }, 300);
  }

  private async markOpenRead(): Promise<void> {
    const id = this.openConv;
    if (!id || document.visibilityState !== 'visible') return;
    const cs = this.conversations.get(id);
    if (!cs || !cs.log.loaded) return;
    const seq = Math.min(cs.log.hi, cs.conv.last_seq);
    if (seq <= (cs.conv.read_seq ?? 0)) return;
    const before = cs.conv.read_seq ?? 0;
    this.noteRead(cs, this.api.userid ?? '', seq);
    this.touch(cs);
    try {
      await this.api.markRead(id, seq);
    } catch {
      // Try again shortly (the cluster may be electing a leader).
      if ((cs.conv.read_seq ?? 0) === seq) cs.conv = { ...cs.conv, read_seq: before };
      this.touch(cs);
      setTimeout(() => this.scheduleRead(), 2000);
    }
  }

  // -------------------------------------------------------------- names

  /** A display name for a userid (fetched in the background when unknown). */
  name(userid: string): string {
    if (userid.startsWith('app:')) return `App ${userid.slice(4)}`;
    const sys = systemSender(userid);
    if (sys) return t(sys);
    const p = this.people.get(userid);
    if (p) return p.name || userid;
    this.wantPerson(userid);
    return userid;
  }

  convTitle(cs: ConvState): string {
    if (isGroupConv(cs.conv)) return cs.conv.name || cs.conv.id;
    if (cs.conv.kind === 'app') return cs.conv.name || `App ${cs.conv.agentid ?? ''}`;
    return cs.peer ? this.name(cs.peer) : cs.conv.name || '…';
  }

  /** The organization of an external account (known from member lists); null for employees. */
  orgOf(userid: string): string | null {
    return this.orgs.get(userid) ?? null;
  }

  /** Names (and, for external accounts, organizations) from an external conversation's member list. */
  rememberMembers(list: readonly ConvMember[]): void {
    for (const m of list) {
      if (m.name === undefined) continue;
      if (m.external) this.orgs.set(m.userid, m.org ?? '');
      const old = this.people.get(m.userid);
      if (!old || old.name !== m.name) {
        this.people.set(m.userid, {
          userid: m.userid,
          name: m.name,
          departments: old?.departments ?? [],
          title: m.external ? (m.org ?? '') : (old?.title ?? ''),
          email: old?.email ?? '',
          mobile: old?.mobile ?? '',
          // A member of the conversation now: active.
          status: 'active',
        });
      }
    }
  }

  wantPerson(userid: string): void {
    if (!userid || userid.startsWith('app:') || systemSender(userid) || this.people.has(userid) || this.pendingPeople.has(userid)) return;
    // An external account may not read the directory: names come with member lists.
    if (this.external || this.orgs.has(userid)) return;
    this.pendingPeople.add(userid);
    if (this.peopleTimer) return;
    this.peopleTimer = setTimeout(() => this.fetchPeople(), 30);
  }

  private async fetchPeople(): Promise<void> {
    this.peopleTimer = null;
    const batch = [...this.pendingPeople].filter((u) => !this.people.has(u));
    const worker = async () => {
      for (let u = batch.shift(); u; u = batch.shift()) {
        try {
          this.people.set(u, await this.api.member(u));
        } catch (e) {
          // Not in the directory (departed, or an external account whose
          // name a member list gives): keep what is known.
          if (e instanceof ApiError && e.status === 404 && !this.people.has(u)) {
            this.people.set(u, { userid: u, name: u, departments: [], title: '', email: '', mobile: '', status: 'departed' });
          }
        } finally {
          this.pendingPeople.delete(u);
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    this.changed();
  }

  rememberPeople(list: readonly Member[]): void {
    for (const m of list) this.people.set(m.userid, m);
  }

  // ------------------------------------------------------------- outbox

  /**
   * Queue a message. It gets its client_msg_id now, once; every retry (on
   * this node or another) sends the same id, so it is delivered once.
   */
  send(
    target: SendTarget,
    text: string,
    mentions: string[],
    replyTo: number | null,
    mentionAll = false,
    file?: FileView,
  ): OutboxItem {
    const body: SendBody = { text, client_msg_id: uuid() };
    if (mentions.length) body.mentions = mentions;
    if (mentionAll) body.mention_all = true;
    if (replyTo) body.reply_to = replyTo;
    if (file) body.file = file.id;
    const r = this.resolveTarget(target);
    target = r.target;
    const convId = r.convId;
    const item: OutboxItem = {
      id: body.client_msg_id,
      target,
      convId,
      body,
      state: 'sending',
      error: null,
      createdAt: Date.now(),
      attempts: 0,
      matchedSeq: null,
      ...(file ? { file } : {}),
    };
    this.outbox.push(item);
    this.saveOutbox();
    this.changed();
    this.pump(queueKey(item));
    return item;
  }

  /** A 1:1 target becomes its conversation once one exists. */
  resolveTarget(target: SendTarget): { target: SendTarget; convId: string | null } {
    if ('direct' in target) {
      const cs = this.directWith(target.direct);
      if (cs) return { target: { conv: cs.conv.id }, convId: cs.conv.id };
      return { target, convId: null };
    }
    return { target, convId: target.conv };
  }

  pending(convId: string | null, direct?: string): OutboxItem[] {
    return this.outbox.filter((o) =>
      convId ? o.convId === convId : !o.convId && 'direct' in o.target && o.target.direct === direct,
    );
  }

  resend(id: string): void {
    const o = this.outbox.find((x) => x.id === id);
    if (!o) return;
    o.state = 'sending';
    o.error = null;
    o.createdAt = Date.now();
    this.saveOutbox();
    this.changed();
    this.pump(queueKey(o));
  }

  discard(id: string): void {
    this.outbox = this.outbox.filter((x) => x.id !== id);
    this.saveOutbox();
    this.changed();
  }

  private pumpAll(): void {
    for (const o of this.outbox) if (o.state === 'sending') this.pump(queueKey(o));
  }

  /** Send one conversation's queue in order, each until a definitive answer. */
  private async pump(key: string): Promise<void> {
    if (this.pumping.has(key)) return;
    this.pumping.add(key);
    try {
      for (;;) {
        const item = this.outbox.find((o) => o.state === 'sending' && queueKey(o) === key);
        if (!item || !this.api.session.tokens) return;
        await this.deliver(item);
      }
    } finally {
      this.pumping.delete(key);
    }
  }

  private async deliver(item: OutboxItem): Promise<void> {
    for (;;) {
      if (!this.outbox.includes(item) || item.state !== 'sending') return;
      item.attempts++;
      try {
        const m = await this.api.send(item.target, item.body);
        this.outbox = this.outbox.filter((x) => x !== item);
        this.saveOutbox();
        let cs = this.conversations.get(m.conversation);
        if (!cs) {
          try {
            cs = this.upsertConv(await this.api.conversation(m.conversation));
            if ('direct' in item.target) cs.peer = item.target.direct;
          } catch {
            this.refetchConv(m.conversation);
          }
        }
        if (cs) {
          if (!cs.peer && 'direct' in item.target) cs.peer = item.target.direct;
          this.noteMessage(cs, m);
          if (cs.log.applyLive(m) === 'gap') this.fillGap(cs.conv.id);
          this.touch(cs);
        }
        // Later messages to the same person now know their conversation.
        for (const o of this.outbox) {
          if (!o.convId && 'direct' in o.target && 'direct' in item.target && o.target.direct === item.target.direct) {
            o.convId = m.conversation;
          }
        }
        this.changed();
        this.pumpAll();
        return;
      } catch (e) {
        if (!this.api.session.tokens) return;
        if (isTransient(e) || e instanceof NetworkError) {
          if (Date.now() - item.createdAt > SEND_GIVE_UP_MS) {
            item.state = 'failed';
            item.error = errorText(e);
            this.saveOutbox();
            this.changed();
            return;
          }
          this.changed();
          await sleep(Math.min(3000, 300 * item.attempts));
          continue;
        }
        item.state = 'failed';
        item.error = errorText(e);
        this.saveOutbox();
        this.changed();
        return;
      }
    }
  }

  /** A live message of mine: the pending copy it answers is shown as sent. */
  private matchOutbox(m: Message): void {
    const o = this.outbox.find(
      (x) =>
        x.convId === m.conversation &&
        x.matchedSeq === null &&
        x.body.text === m.text &&
        (x.body.file ?? null) === (m.file?.id ?? null),
    );
    if (o) o.matchedSeq = m.seq;
  }

  private saveOutbox(): void {
    try {
      sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(this.outbox));
    } catch {
      /* memory only */
    }
  }

  private loadOutbox(): void {
    try {
      const raw = sessionStorage.getItem(OUTBOX_KEY);
      const list = raw ? (JSON.parse(raw) as OutboxItem[]) : [];
      this.outbox = list.map((o) => ({ ...o, matchedSeq: null, createdAt: o.state === 'sending' ? Date.now() : o.createdAt }));
    } catch {
      this.outbox = [];
    }
  }

  // ------------------------------------------------------------ actions

  async recall(convId: string, seq: number): Promise<void> {
    const m = await this.api.recall(convId, seq);
    const cs = this.conversations.get(convId);
    if (cs && m && typeof m === 'object' && 'seq' in m) {
      cs.log.recall(seq);
      if (cs.lastMessage?.seq === seq) cs.lastMessage = { ...cs.lastMessage, recalled: true, text: '', file: null };
      this.touch(cs);
    }
  }

  async createGroup(name: string, members: string[]): Promise<string> {
    const c = await this.api.createGroup(name, members, uuid());
    const cs = this.upsertConv({ ...c, read_seq: 0, unread: 0 });
    cs.members = null;
    return c.id;
  }

  /** A conversation I was just put in (a customer group I created): show it before its event arrives. */
  adoptConversation(c: Conversation): void {
    const cs = this.upsertConv({ ...c, read_seq: c.read_seq ?? 0, unread: c.unread ?? 0 });
    cs.members = null;
  }

  /** Apply a conversation the server returned after a change. */
  applyConv(c: Conversation | unknown): void {
    if (c && typeof c === 'object' && 'id' in c && 'kind' in c) {
      const cs = this.conversations.get((c as Conversation).id);
      if (cs) {
        const cc = c as Conversation;
        cs.conv = { ...cs.conv, ...cc, read_seq: cs.conv.read_seq, last_seq: Math.max(cs.conv.last_seq, cc.last_seq) };
        this.touch(cs);
      }
    }
  }

  async leaveGroup(id: string): Promise<void> {
    await this.api.leave(id);
    this.conversations.delete(id);
    this.changed();
  }
}

/** A 1:1 conversation: with a colleague, or an employee's with an external contact. */
export function isPair(c: Conversation): boolean {
  return c.kind === 'direct' || c.kind === 'contact';
}

/** A group: internal, or a customer group (客户群). */
export function isGroupConv(c: Conversation): boolean {
  return c.kind === 'group' || c.kind === 'customer';
}

function activity(cs: ConvState): number {
  return cs.lastMessage?.time_ms ?? cs.conv.created_at_ms ?? 0;
}

function queueKey(o: OutboxItem): string {
  if (o.convId) return o.convId;
  return 'conv' in o.target ? o.target.conv : `direct:${o.target.direct}`;
}
