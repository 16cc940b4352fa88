// Exact resume for the event stream: pure logic, no DOM, unit-tested.
//
// The server numbers every event globally (`no`) and sends its `token`
// (the same number as a string). "I have everything up to token T" means
// the same on every node, so the client keeps the last token and
// reconnects anywhere with `since=T`. Events at or below the token are
// duplicates (a replay after a reconnect, a frame seen twice) and are
// dropped, so nothing is ever shown twice.

export interface EventFrame {
  token: string;
  no: number;
  conversation: string;
  time_ms: number;
  actor: string;
  type: string;
  [field: string]: unknown;
}

export type Frame =
  | EventFrame
  | { type: 'synced'; token: string }
  | { type: 'resync'; token: string };

export type Accepted =
  | { kind: 'event'; event: EventFrame }
  | { kind: 'duplicate'; no: number }
  | { kind: 'synced'; token: string }
  | { kind: 'resync'; token: string }
  | { kind: 'invalid' };

/** Parses a token the server gave ("1042"); null when it is not one. */
export function tokenNumber(token: unknown): number | null {
  if (typeof token !== 'string' || !/^\d{1,16}$/.test(token)) return null;
  return Number(token);
}

export class StreamCursor {
  /** The token to resume from (`since`), or null: from the sync head the caller chose. */
  token: string | null;
  /** Highest event number seen or covered by a token. */
  private high: number;

  constructor(token: string | null = null) {
    this.token = token;
    this.high = tokenNumber(token) ?? 0;
  }

  /** The highest event number already covered. */
  get position(): number {
    return this.high;
  }

  /**
   * One frame from the stream (already JSON-parsed). Moves the cursor and
   * says what to do with it.
   */
  accept(frame: unknown): Accepted {
    if (!frame || typeof frame !== 'object') return { kind: 'invalid' };
    const f = frame as Record<string, unknown>;
    if (f.type === 'synced' || f.type === 'resync') {
      const n = tokenNumber(f.token);
      if (n === null) return { kind: 'invalid' };
      // A token only moves forward: a resync to an older position would
      // replay events we already have (they are deduplicated anyway).
      if (n >= this.high) {
        this.high = n;
        this.token = f.token as string;
      }
      return f.type === 'synced'
        ? { kind: 'synced', token: this.token ?? (f.token as string) }
        : { kind: 'resync', token: this.token ?? (f.token as string) };
    }
    const no = typeof f.no === 'number' ? f.no : tokenNumber(f.token);
    if (no === null || typeof f.type !== 'string' || typeof f.conversation !== 'string') {
      return { kind: 'invalid' };
    }
    if (no <= this.high) return { kind: 'duplicate', no };
    this.high = no;
    this.token = typeof f.token === 'string' ? f.token : String(no);
    return { kind: 'event', event: { ...(f as EventFrame), no } };
  }
}

/** The WebSocket URL for a node's stream: https→wss, http→ws. */
export function streamUrl(base: string, since: string | null, accessToken: string): string {
  const u = new URL('/v1/stream', base);
  u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
  if (since !== null) u.searchParams.set('since', since);
  u.searchParams.set('access_token', accessToken);
  return u.toString();
}
