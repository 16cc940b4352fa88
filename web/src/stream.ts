// The live event stream: `GET /v1/stream?since=T&access_token=…`
// (WebSocket). Resumes exactly: the cursor keeps the last event token, a
// reconnect (to this or another node) asks for everything after it, and
// events at or below it are dropped, so none is lost or shown twice.
//
// - `{"type":"synced"}`: the backlog is done, live from here.
// - `{"type":"resync","token":T}`: the node dropped us for being slow;
//   reconnect at once with T.
// - an abnormal close or a failed connect: the node is probably down; try
//   the next node of the pool, backing off while all of them fail.

import type { Api } from './api.ts';
import { StreamCursor, streamUrl, type EventFrame } from './logic/cursor.ts';

export type StreamStatus = 'connecting' | 'syncing' | 'live' | 'offline' | 'stopped';

export interface StreamHandlers {
  onEvent(ev: EventFrame): void;
  onStatus(status: StreamStatus, node: string): void;
  /** The backlog after a (re)connect has been delivered. */
  onSynced?(token: string): void;
}

export class EventStream {
  readonly cursor: StreamCursor;
  private ws: WebSocket | null = null;
  private stopped = true;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private status: StreamStatus = 'stopped';
  private unsubscribePool: (() => void) | null = null;
  private node = '';
  private lastFrameAt = 0;
  private watchdog: ReturnType<typeof setInterval> | null = null;

  constructor(
    private api: Api,
    private handlers: StreamHandlers,
    since: string | null,
  ) {
    this.cursor = new StreamCursor(since);
  }

  get state(): StreamStatus {
    return this.status;
  }

  get currentNode(): string {
    return this.node;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // REST calls found the node down and moved on: follow them.
    this.unsubscribePool = this.api.pool.onChange(() => {
      if (this.ws && this.node !== this.api.pool.current) this.reconnect(0);
    });
    this.watchdog = setInterval(() => this.checkAlive(), 5000);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribePool?.();
    this.unsubscribePool = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.timer = null;
    this.watchdog = null;
    this.dropSocket();
    this.setStatus('stopped');
  }

  /** The browser says the network is back, or the tab became visible. */
  nudge(): void {
    if (this.stopped) return;
    if (!this.ws || this.ws.readyState === WebSocket.CLOSED) this.reconnect(0);
  }

  private setStatus(s: StreamStatus): void {
    this.status = s;
    this.handlers.onStatus(s, this.node);
  }

  private dropSocket(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
    }
  }

  private reconnect(delayMs: number): void {
    this.dropSocket();
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delayMs);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.api.ensureFresh();
    } catch {
      /* the refresh is retried below or the session ends */
    }
    const token = this.api.accessToken;
    if (!token || this.stopped) return;
    this.node = this.api.pool.current;
    this.setStatus(this.failures ? 'offline' : 'connecting');
    let ws: WebSocket;
    try {
      ws = new WebSocket(streamUrl(this.node, this.cursor.token, token));
    } catch {
      this.failed();
      return;
    }
    this.ws = ws;
    let opened = false;
    let resyncing = false;
    ws.onopen = () => {
      opened = true;
      this.lastFrameAt = Date.now();
      this.setStatus('syncing');
    };
    ws.onmessage = (m) => {
      this.lastFrameAt = Date.now();
      let frame: unknown;
      try {
        frame = JSON.parse(typeof m.data === 'string' ? m.data : '');
      } catch {
        return;
      }
      const r = this.cursor.accept(frame);
      switch (r.kind) {
        case 'event':
          this.handlers.onEvent(r.event);
          break;
        case 'synced':
          this.failures = 0;
          this.setStatus('live');
          this.handlers.onSynced?.(r.token);
          break;
        case 'resync':
          // Too slow for the node: reconnect with the token, no back-off.
          resyncing = true;
          this.reconnect(0);
          break;
        default:
          break;
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (resyncing) return;
      if (opened && ev.code === 1000 && this.status === 'live') {
        // The node closed a healthy stream (e.g. it is shutting down gracefully).
        this.reconnect(100);
        return;
      }
      this.failed(opened);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** The connection failed or died: next node, backing off once all were tried. */
  private failed(wasOpen = false): void {
    this.failures++;
    this.setStatus('offline');
    const node = this.node;
    this.api.pool.failover(node);
    // If the token expired, the upgrade is refused like a dead node: a
    // REST probe tells the two apart (and refreshes or ends the session).
    if (this.failures % 2 === 0) {
      this.api.me().catch(() => {});
    }
    const n = Math.max(1, this.api.pool.all.length);
    const round = Math.floor((this.failures - 1) / n);
    const delay = wasOpen && this.failures === 1 ? 0 : Math.min(5000, 250 * 2 ** round) + Math.random() * 250;
    this.reconnect(delay);
  }

  /** A half-open connection (node frozen) sends nothing: give up on it. */
  private checkAlive(): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    // The server pings every 30 s, but pings are invisible to scripts;
    // only a long silence while REST calls fail leads here (see pool.onChange).
    if (this.status !== 'live' && Date.now() - this.lastFrameAt > 20000) this.failed(true);
  }
}
