// Typed client of the native JSON API (`/v1` on the api port), with node
// failover and retries.
//
// Any node answers any request and a token works on every node, so when
// the current node fails (network error, time-out, 502/503/504 such as
// `no_leader` or `no_quorum`) the request is sent again to the next node
// of the cluster's list (`GET /v1/nodes`). Writes are retried only when
// that is safe: the server said it took nothing (`no_leader`,
// `unavailable`, `no_quorum`), the write is idempotent by nature (read
// markers, renames), or it carries an idempotency key (`client_msg_id`,
// `Idempotency-Key`) so a repeat returns the first result.

import type { Message } from './logic/messages.ts';
import type { EventFrame } from './logic/cursor.ts';
import type { FileKind, FileView } from './logic/files.ts';

// ------------------------------------------------------------------ types

export interface Tokens {
  userid: string;
  access_token: string;
  expires_at_ms: number;
  refresh_token: string;
  refresh_expires_at_ms: number;
  must_change_password?: boolean;
}

export interface Member {
  userid: string;
  name: string;
  departments: number[];
  title: string;
  email: string;
  mobile: string;
  status: 'active' | 'disabled' | 'departed';
}

export interface Department {
  id: number;
  parent: number | null;
  name: string;
  order: number;
  leaders: string[];
}

export interface Conversation {
  id: string;
  /** `contact`: an employee's 1:1 with an external contact; `customer`: a customer group (客户群). */
  kind: 'direct' | 'group' | 'app' | 'notice' | 'contact' | 'customer';
  name: string;
  owner: string;
  admins: string[];
  announcement: string;
  member_count: number;
  last_seq: number;
  created_at_ms: number;
  dissolved: boolean;
  /** With people outside the organization (kinds `contact` and `customer`). */
  external?: boolean;
  read_seq?: number;
  unread?: number;
  agentid?: number;
  /** Not in the API yet: the other member of a 1:1 conversation. */
  peer?: string;
  /** Not in the API yet: the newest message, for the list's preview. */
  last_message?: Message | null;
}

export interface ConvMember {
  userid: string;
  read_seq: number;
  delivered_seq: number;
  /** External conversations only: names come with the list (externals cannot read the directory). */
  name?: string;
  external?: boolean;
  /** An external member's organization. */
  org?: string;
}

export interface Receipts {
  seq: number;
  read_count: number;
  unread_count: number;
  delivered_count: number;
  read: string[];
  unread: string[];
}

export interface Me {
  member: Member;
  session_expires_at_ms: number;
  must_change_password: boolean;
  sync_head: number;
  permissions?: string[];
  /** An external account (a contact from outside the organization): no directory, no internal groups. */
  external?: boolean;
}

export interface NodeInfo {
  id: string;
  api_url: string;
}

export interface SendBody {
  text: string;
  client_msg_id: string;
  mentions?: string[];
  mention_all?: boolean;
  reply_to?: number;
  /** An uploaded file's id: the message carries it (`text` is then its caption, maybe empty). */
  file?: string;
}

export type SendTarget = { conv: string } | { direct: string };

export type { Message, EventFrame, FileKind, FileView };

// ----------------------------------------------------------------- errors

/** The server answered with an error (`{"error": {"code", "message"}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Worth sending again (the same request, maybe to another node). */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 429 || this.code === 'token_expired';
  }
}

/** No answer: connection refused or reset, TLS failure, time-out. */
export class NetworkError extends Error {
  constructor(
    readonly node: string,
    message: string,
  ) {
    super(message);
    this.name = 'NetworkError';
  }
}

/** The caller gave up (cancel button, view closed): not an error to show. */
export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

/** Whether an error means "try again later", as opposed to a definitive answer. */
export function isTransient(e: unknown): boolean {
  return e instanceof NetworkError || (e instanceof ApiError && e.retryable);
}

/** Codes after which the node should be left for another one. */
const LEAVE_NODE = new Set(['no_leader', 'no_quorum', 'unavailable', 'shutting_down']);

// ------------------------------------------------------------------ nodes

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * The nodes this client may talk to and the one it currently uses. Shared
 * by REST calls and the stream: when one of them finds the current node
 * down, both move on.
 */
export class NodePool {
  private urls: string[];
  private ids = new Map<string, string>();
  private i = 0;
  private listeners = new Set<() => void>();

  constructor(origin: string) {
    this.urls = [originOf(origin)];
  }

  get current(): string {
    return this.urls[this.i];
  }

  get all(): readonly string[] {
    return this.urls;
  }

  /** The node's id from `/v1/nodes` (or its host). */
  label(url: string = this.current): string {
    return this.ids.get(url) ?? new URL(url).host;
  }

  /** The cluster's list: the page's own node stays first and current. */
  set(nodes: readonly NodeInfo[]): void {
    const cur = this.current;
    const origins: string[] = [];
    for (const n of nodes) {
      const o = originOf(n.api_url);
      this.ids.set(o, n.id);
      if (!origins.includes(o)) origins.push(o);
    }
    const first = this.urls[0];
    const list = [first, ...origins.filter((o) => o !== first)];
    this.urls = list;
    this.i = Math.max(0, list.indexOf(cur));
    this.emit();
  }

  /** `bad` failed: move to the next node (if it is still the current one). */
  failover(bad: string): string {
    if (this.urls.length > 1 && this.current === bad) {
      this.i = (this.i + 1) % this.urls.length;
      this.emit();
    }
    return this.current;
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }
}

// ---------------------------------------------------------------- session

const SESSION_KEY = 'enclave.session';

/** Tokens, kept in sessionStorage (per tab, gone when the tab closes; no cookies). */
export class Session {
  tokens: Tokens | null = null;

  constructor(private storage: Storage | null) {
    try {
      const raw = storage?.getItem(SESSION_KEY);
      if (raw) this.tokens = JSON.parse(raw) as Tokens;
    } catch {
      this.tokens = null;
    }
  }

  set(t: Tokens | null): void {
    this.tokens = t;
    try {
      if (t) this.storage?.setItem(SESSION_KEY, JSON.stringify(t));
      else this.storage?.removeItem(SESSION_KEY);
    } catch {
      /* storage full or disabled: keep it in memory */
    }
  }
}

// -------------------------------------------------------------------- api

type Retry =
  /** Reads and writes that are safe to repeat. */
  | 'safe'
  /** Writes that may not be repeated after an unknown outcome: only when the server took nothing. */
  | 'once';

interface CallOptions {
  body?: unknown;
  /** Answer with the body's bytes instead of JSON (downloads). */
  blob?: boolean;
  /** Bytes of a `blob` answer as they arrive (of the total, when the server says it). */
  onProgress?: (loaded: number, total: number | null) => void;
  /** Abort from outside: the call then fails with `Cancelled` and is not retried. */
  signal?: AbortSignal;
  query?: Record<string, string | number | undefined | null>;
  auth?: boolean;
  retry?: Retry;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Total attempts over all nodes (default: two rounds of the node list). */
  attempts?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Api {
  /** Called when the session is gone (revoked, refresh failed): log out. */
  onSessionEnded: () => void = () => {};
  /** Called with new tokens after a refresh. */
  onTokens: (t: Tokens) => void = () => {};
  private refreshing: Promise<void> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly pool: NodePool,
    readonly session: Session,
  ) {}

  get userid(): string | null {
    return this.session.tokens?.userid ?? null;
  }

  get accessToken(): string | null {
    return this.session.tokens?.access_token ?? null;
  }

  /** One request, with failover and retries as `opts.retry` allows. */
  async call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const auth = opts.auth ?? true;
    const retry = opts.retry ?? (method === 'GET' ? 'safe' : 'once');
    const attempts = opts.attempts ?? Math.max(3, this.pool.all.length * 2 + 1);
    let refreshed = false;
    let last: unknown = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (auth) await this.ensureFresh();
      const node = this.pool.current;
      try {
        return await this.once<T>(node, method, path, opts, auth);
      } catch (e) {
        last = e;
        if (e instanceof NetworkError) {
          // No answer: the node may be down. Unsafe writes may have been
          // applied; repeat them only if they are idempotent.
          this.pool.failover(node);
          if (retry !== 'safe') throw e;
        } else if (e instanceof ApiError) {
          if (e.status === 401 && auth) {
            if (e.code === 'token_expired' && !refreshed) {
              refreshed = true;
              await this.refresh(true);
              continue;
            }
            this.endSession();
            throw e;
          }
          if (!e.retryable) throw e;
          if (LEAVE_NODE.has(e.code) || e.status === 502 || e.status === 504) {
            this.pool.failover(node);
          } else if (retry !== 'safe') {
            // outcome_unknown and friends: only an idempotent request may be repeated.
            throw e;
          }
        } else {
          throw e;
        }
      }
      if (opts.signal?.aborted) throw new Cancelled();
      const round = Math.floor(attempt / Math.max(1, this.pool.all.length));
      await sleep(attempt === 0 ? 50 : Math.min(2000, 200 * 2 ** round) + Math.random() * 100);
    }
    throw last;
  }

  private async once<T>(node: string, method: string, path: string, opts: CallOptions, auth: boolean): Promise<T> {
    const url = new URL(path, node);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { Accept: opts.blob ? '*/*' : 'application/json', ...(opts.headers ?? {}) };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    if (opts.signal?.aborted) throw new Cancelled();
    const ctrl = new AbortController();
    const cancel = () => ctrl.abort();
    opts.signal?.addEventListener('abort', cancel);
    // The time-out covers the answer's headers, then (for bytes) each stall while reading.
    const wait = opts.timeoutMs ?? 15000;
    let timer = setTimeout(cancel, wait);
    const failed = (e: unknown) =>
      opts.signal?.aborted ? new Cancelled() : new NetworkError(node, e instanceof Error ? e.message : String(e));
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: ctrl.signal,
        credentials: 'omit',
        cache: 'no-store',
        mode: 'cors',
      });
      if (res.ok && opts.blob) {
        const total = Number(res.headers.get('content-length')) || null;
        const type = res.headers.get('content-type') ?? '';
        const reader = res.body?.getReader();
        if (!reader) return (await res.blob()) as T;
        const parts: Uint8Array[] = [];
        let loaded = 0;
        for (;;) {
          clearTimeout(timer);
          timer = setTimeout(cancel, wait);
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
          loaded += value.byteLength;
          opts.onProgress?.(loaded, total);
        }
        return new Blob(parts as BlobPart[], { type }) as T;
      }
    } catch (e) {
      throw failed(e);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', cancel);
    }
    let data: unknown = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? res.statusText);
    }
    return data as T;
  }

  // ------------------------------------------------------------- tokens

  /** New tokens (login, refresh): store them and plan the next refresh. */
  setTokens(t: Tokens | null): void {
    this.session.set(t);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!t) return;
    // Refresh five minutes before expiry (or halfway through a short session).
    const left = t.expires_at_ms - Date.now();
    const at = Math.max(5000, Math.min(left - 5 * 60_000, left / 2));
    this.refreshTimer = setTimeout(() => this.timedRefresh(), Math.min(at, 2 ** 31 - 1));
    this.onTokens(t);
  }

  private timedRefresh(): void {
    this.refresh(true).catch(() => {
      // No node answered: try again in a while (the session ends only on a 401).
      if (!this.session.tokens) return;
      if (this.refreshTimer) clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => this.timedRefresh(), 15000);
    });
  }

  /** Refresh when the access token is about to expire. */
  async ensureFresh(): Promise<void> {
    const t = this.session.tokens;
    if (!t) return;
    if (this.refreshing) return this.refreshing;
    if (t.expires_at_ms - Date.now() < 60_000) await this.refresh(true);
  }

  /** Exchange the refresh token (once at a time: a refresh token works once). */
  refresh(force = false): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const t = this.session.tokens;
    if (!t) return Promise.resolve();
    if (!force && t.expires_at_ms - Date.now() > 60_000) return Promise.resolve();
    this.refreshing = (async () => {
      try {
        const next = await this.call<Tokens>('POST', '/v1/token/refresh', {
          body: { refresh_token: t.refresh_token },
          auth: false,
          retry: 'once',
        });
        this.setTokens({ ...next, userid: next.userid ?? t.userid });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) this.endSession();
        throw e;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private endSession(): void {
    if (!this.session.tokens) return;
    this.setTokens(null);
    this.onSessionEnded();
  }

  // ---------------------------------------------------------- endpoints

  login(userid: string, password: string): Promise<Tokens> {
    return this.call<Tokens>('POST', '/v1/login', {
      body: { userid, password },
      auth: false,
      retry: 'safe',
      timeoutMs: 30000,
    });
  }

  async logout(): Promise<void> {
    try {
      await this.call('POST', '/v1/logout', { retry: 'safe', attempts: 2 });
    } finally {
      this.setTokens(null);
    }
  }

  me(): Promise<Me> {
    return this.call<Me>('GET', '/v1/me');
  }

  changePassword(old_password: string, new_password: string): Promise<unknown> {
    return this.call('POST', '/v1/me/password', {
      body: { old_password, new_password },
      timeoutMs: 30000,
    });
  }

  /** The cluster's nodes; null while the server does not have the route. */
  async nodes(): Promise<NodeInfo[] | null> {
    try {
      const r = await this.call<{ nodes: NodeInfo[] }>('GET', '/v1/nodes', { attempts: 2 });
      return Array.isArray(r?.nodes) ? r.nodes : null;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  }

  departments(): Promise<{ departments: Department[] }> {
    return this.call('GET', '/v1/directory/departments');
  }

  members(q: { department?: number; q?: string; cursor?: string; limit?: number }): Promise<{
    members: Member[];
    next_cursor: string | null;
  }> {
    return this.call('GET', '/v1/directory/members', { query: q });
  }

  member(userid: string): Promise<Member> {
    return this.call('GET', `/v1/directory/members/${encodeURIComponent(userid)}`);
  }

  conversations(cursor?: string): Promise<{ conversations: Conversation[]; next_cursor: string | null }> {
    return this.call('GET', '/v1/conversations', { query: { cursor, limit: 500 } });
  }

  conversation(id: string): Promise<Conversation> {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(id)}`);
  }

  createGroup(name: string, members: string[], key: string): Promise<Conversation> {
    return this.call('POST', '/v1/conversations', {
      body: { name, members },
      headers: { 'Idempotency-Key': key },
      retry: 'safe',
    });
  }

  updateConversation(id: string, patch: { name?: string; announcement?: string }): Promise<Conversation> {
    return this.call('PATCH', `/v1/conversations/${encodeURIComponent(id)}`, { body: patch, retry: 'safe' });
  }

  dissolve(id: string): Promise<Conversation> {
    return this.call('DELETE', `/v1/conversations/${encodeURIComponent(id)}`);
  }

  convMembers(id: string, cursor?: string): Promise<{ members: ConvMember[]; next_cursor: string | null }> {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(id)}/members`, {
      query: { cursor, limit: 2000 },
    });
  }

  addMembers(id: string, userids: string[]): Promise<Conversation> {
    return this.call('POST', `/v1/conversations/${encodeURIComponent(id)}/members`, { body: { userids } });
  }

  removeMember(id: string, userid: string): Promise<Conversation> {
    return this.call(
      'DELETE',
      `/v1/conversations/${encodeURIComponent(id)}/members/${encodeURIComponent(userid)}`,
    );
  }

  leave(id: string): Promise<unknown> {
    return this.call('POST', `/v1/conversations/${encodeURIComponent(id)}/leave`);
  }

  setOwner(id: string, userid: string): Promise<Conversation> {
    return this.call('PUT', `/v1/conversations/${encodeURIComponent(id)}/owner`, { body: { userid } });
  }

  setAdmins(id: string, admins: string[]): Promise<Conversation> {
    return this.call('PUT', `/v1/conversations/${encodeURIComponent(id)}/admins`, {
      body: { admins },
      retry: 'safe',
    });
  }

  messages(id: string, after_seq: number, limit: number): Promise<{ messages: Message[]; next_after_seq: number | null }> {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(id)}/messages`, {
      query: { after_seq, limit },
    });
  }

  /**
   * Send a message: `client_msg_id` makes every repeat return the first
   * message, so this is safe to repeat (over several nodes) until a
   * definitive answer; the caller keeps trying after transient errors.
   */
  send(target: SendTarget, body: SendBody): Promise<Message> {
    const path =
      'conv' in target
        ? `/v1/conversations/${encodeURIComponent(target.conv)}/messages`
        : `/v1/direct/${encodeURIComponent(target.direct)}/messages`;
    return this.call('POST', path, { body, retry: 'safe', timeoutMs: 12000 });
  }

  recall(id: string, seq: number): Promise<Message> {
    return this.call('POST', `/v1/conversations/${encodeURIComponent(id)}/messages/${seq}/recall`, {
      retry: 'safe',
    });
  }

  receipts(id: string, seq: number): Promise<Receipts> {
    return this.call('GET', `/v1/conversations/${encodeURIComponent(id)}/messages/${seq}/receipts`);
  }

  // ------------------------------------------------------------ files

  /**
   * A file's bytes (or its JPEG thumbnail): a download is a read, so it is
   * safe to repeat on another node.
   */
  fileBytes(
    id: string,
    opts: { thumbnail?: boolean; signal?: AbortSignal; onProgress?: (loaded: number, total: number | null) => void } = {},
  ): Promise<Blob> {
    const path = `/v1/files/${encodeURIComponent(id)}${opts.thumbnail ? '/thumbnail' : ''}`;
    return this.call<Blob>('GET', path, { blob: true, signal: opts.signal, onProgress: opts.onProgress, timeoutMs: 30000 });
  }

  markRead(id: string, seq: number): Promise<unknown> {
    return this.call('POST', `/v1/conversations/${encodeURIComponent(id)}/read`, {
      body: { seq },
      retry: 'safe',
    });
  }
}
