// Messages of one conversation, merged from pages and live events: pure
// logic, no DOM, unit-tested. Sequence numbers are 1, 2, 3, … without gaps
// and the same on every node, so a message is identified by its `seq` and
// merging is idempotent: a message seen twice (page + live event, a replay
// after a reconnect) is stored once.

import type { FileView } from './files.ts';

export interface RichArticle {
  title?: string;
  description?: string;
  url?: string;
  picurl?: string;
}

export interface Rich {
  type: 'markdown' | 'textcard' | 'news';
  content?: string;
  title?: string;
  description?: string;
  url?: string;
  btntxt?: string;
  articles?: RichArticle[];
}

export interface Message {
  conversation: string;
  seq: number;
  sender: string;
  time_ms: number;
  text: string;
  mentions: string[];
  mention_all: boolean;
  reply_to: number | null;
  recalled: boolean;
  event: number;
  safe: boolean;
  rich?: Rich;
  /** An attachment (file, image, voice note); null once recalled. */
  file?: FileView | null;
}

/** What a live message did to the log. */
export type LiveResult = 'appended' | 'updated' | 'gap' | 'ignored';

/**
 * A contiguous run of messages `lo..=hi` of one conversation (empty until
 * the first page is loaded). Live messages extend it at the top; older
 * pages extend it at the bottom; a live message beyond `hi + 1` reports a
 * gap for the caller to fill with a page.
 */
export class MessageLog {
  private items: Message[] = [];
  /** Set once a page has been loaded: from then on live messages are kept. */
  loaded = false;
  /** Changes every time the content changes (for memoized views). */
  version = 0;

  get lo(): number {
    return this.items.length ? this.items[0].seq : 0;
  }

  get hi(): number {
    return this.items.length ? this.items[this.items.length - 1].seq : 0;
  }

  get size(): number {
    return this.items.length;
  }

  /** True when messages older than the loaded ones exist. */
  get hasOlder(): boolean {
    return this.lo > 1;
  }

  all(): readonly Message[] {
    return this.items;
  }

  get(seq: number): Message | undefined {
    const i = this.indexOf(seq);
    return i >= 0 ? this.items[i] : undefined;
  }

  indexOf(seq: number): number {
    const items = this.items;
    let a = 0;
    let b = items.length - 1;
    while (a <= b) {
      const m = (a + b) >> 1;
      const s = items[m].seq;
      if (s === seq) return m;
      if (s < seq) a = m + 1;
      else b = m - 1;
    }
    return -1;
  }

  /**
   * Merge a page (any order, any overlap). Only messages contiguous with
   * what is loaded are kept, so the log never has holes; returns how many
   * were added.
   */
  mergePage(page: readonly Message[]): number {
    const sorted = [...page].sort((x, y) => x.seq - y.seq);
    let added = 0;
    if (!this.items.length) {
      // Start from the page's newest contiguous run.
      const run: Message[] = [];
      for (let i = sorted.length - 1; i >= 0; i--) {
        const m = sorted[i];
        if (run.length && m.seq !== run[0].seq - 1) {
          if (m.seq === run[0].seq) continue;
          break;
        }
        run.unshift(m);
      }
      this.items = run;
      added = run.length;
    } else {
      const older: Message[] = [];
      for (let i = sorted.length - 1; i >= 0; i--) {
        const m = sorted[i];
        const first = older.length ? older[0].seq : this.lo;
        if (m.seq === first - 1) older.unshift(m);
      }
      if (older.length) {
        this.items = older.concat(this.items);
        added += older.length;
      }
      for (const m of sorted) {
        if (m.seq === this.hi + 1) {
          this.items.push(m);
          added++;
        } else if (m.seq >= this.lo && m.seq <= this.hi) {
          this.replace(m);
        }
      }
    }
    this.loaded = true;
    this.version++;
    return added;
  }

  /** A message from the live stream (or a send's answer). */
  applyLive(m: Message): LiveResult {
    if (!this.loaded) return 'ignored';
    if (!this.items.length) {
      if (m.seq === 1) {
        this.items.push(m);
        this.version++;
        return 'appended';
      }
      return 'gap';
    }
    if (m.seq === this.hi + 1) {
      this.items.push(m);
      this.version++;
      return 'appended';
    }
    if (m.seq > this.hi + 1) return 'gap';
    if (m.seq < this.lo) return 'ignored';
    this.replace(m);
    return 'updated';
  }

  /** A `recalled` event: the message becomes a tombstone. */
  recall(seq: number): boolean {
    const i = this.indexOf(seq);
    if (i < 0) return false;
    const m = this.items[i];
    if (m.recalled) return false;
    this.items = this.items.slice();
    this.items[i] = { ...m, recalled: true, text: '', rich: undefined, mentions: [], file: null };
    this.version++;
    return true;
  }

  private replace(m: Message): void {
    const i = this.indexOf(m.seq);
    if (i < 0) return;
    const old = this.items[i];
    // A recall is final: a stale copy (an older page) does not undo it.
    const merged = old.recalled && !m.recalled ? old : m;
    if (merged === old) return;
    this.items = this.items.slice();
    this.items[i] = merged;
    this.version++;
  }
}

/**
 * Where the next older page starts: the API pages by `after_seq` (messages
 * with seq above it), so the page before `lo` is `after_seq = lo - 1 - n`.
 */
export function olderPage(lo: number, pageSize: number): { after_seq: number; limit: number } | null {
  if (lo <= 1) return null;
  const after = Math.max(0, lo - 1 - pageSize);
  return { after_seq: after, limit: lo - 1 - after };
}

/** The newest page of a conversation whose last message is `lastSeq`. */
export function latestPage(lastSeq: number, pageSize: number): { after_seq: number; limit: number } {
  const after = Math.max(0, lastSeq - pageSize);
  return { after_seq: after, limit: Math.max(1, lastSeq - after) };
}

/**
 * Read receipts of one message from the members' read markers: everyone
 * but the sender whose `read_seq` reached it has read it.
 */
export function receiptCounts(
  seq: number,
  sender: string,
  readSeqs: ReadonlyMap<string, number>,
): { read: number; unread: number } {
  let read = 0;
  let unread = 0;
  for (const [userid, r] of readSeqs) {
    if (userid === sender) continue;
    if (r >= seq) read++;
    else unread++;
  }
  return { read, unread };
}

/**
 * The mention being typed at the caret: `@` at the start or after a space,
 * then no space up to the caret. Returns where the `@` is and the query.
 */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const at = before.lastIndexOf('@');
  if (at < 0) return null;
  if (at > 0 && !/\s/.test(before[at - 1])) return null;
  const query = before.slice(at + 1);
  if (/\s/.test(query) || query.length > 32) return null;
  return { start: at, query };
}

/** Replace the typed `@query` with `@name ` and say where the caret goes. */
export function insertMention(
  text: string,
  start: number,
  caret: number,
  name: string,
): { text: string; caret: number } {
  const ins = `@${name} `;
  return { text: text.slice(0, start) + ins + text.slice(caret), caret: start + ins.length };
}

/** The picked mentions still present in the text (`@name`), in order, once each. */
export function mentionsInText(text: string, picked: ReadonlyArray<{ userid: string; name: string }>): string[] {
  const out: string[] = [];
  for (const p of picked) {
    if (!out.includes(p.userid) && text.includes(`@${p.name}`)) out.push(p.userid);
  }
  return out;
}

/** Members matching a mention query: name or userid prefix, case-insensitive. */
export function filterMembers<T extends { userid: string; name: string }>(
  members: readonly T[],
  query: string,
  limit = 8,
): T[] {
  const q = query.toLowerCase();
  const starts: T[] = [];
  const contains: T[] = [];
  for (const m of members) {
    const n = m.name.toLowerCase();
    const u = m.userid.toLowerCase();
    if (!q || n.startsWith(q) || u.startsWith(q)) starts.push(m);
    else if (n.includes(q) || u.includes(q)) contains.push(m);
  }
  return starts.concat(contains).slice(0, limit);
}
