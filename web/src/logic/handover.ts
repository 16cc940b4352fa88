// Pure helpers of hand-overs (an employee's external contacts handed to
// another employee) as an external account sees them: what to show, and
// who takes over, read from the hand-over notice. Its own module so that
// only the external-contact chunk carries it.

/** The sender of hand-over notices in a contact's 1:1. */
export const HANDOVER_SENDER = 'system:handover';

/**
 * A hand-over of external contacts from one employee to another, as
 * `GET /v1/external/transfers` and `POST /v1/external/transfers/{id}/object`
 * give it. An external account is listed only the waiting ones that
 * concern it, and no longer one it objected to.
 */
export interface Transfer {
  id: number;
  from: string;
  to: string;
  externals: string[];
  groups: string[];
  by: string;
  message: string;
  created_ms: number;
  due_ms: number;
  status: 'waiting' | 'done' | 'cancelled';
  objected: string[];
  finished_ms: number;
}

/** A hand-over as its external contact sees it: still to object to, or objected to. */
export interface Handover {
  t: Transfer;
  objected: boolean;
}

/**
 * What an external account is shown: the waiting hand-overs the server
 * lists, and those it objected to in this session (the server's list drops
 * them) until their window ends or it dismisses the note. Soonest first.
 */
export function handoversToShow(
  waiting: readonly Transfer[],
  objected: ReadonlyMap<number, Transfer>,
  dismissed: ReadonlySet<number>,
  me: string,
  now: number,
): Handover[] {
  const out = new Map<number, Handover>();
  for (const t of waiting) {
    if (t.status !== 'waiting') continue;
    const mine = objected.has(t.id) || t.objected.includes(me);
    if (mine && dismissed.has(t.id)) continue;
    out.set(t.id, { t, objected: mine });
  }
  for (const t of objected.values()) {
    if (out.has(t.id) || dismissed.has(t.id) || now >= t.due_ms) continue;
    out.set(t.id, { t, objected: true });
  }
  return [...out.values()].sort((a, b) => a.t.due_ms - b.t.due_ms || a.t.id - b.t.id);
}

/**
 * The names in a hand-over notice: "<to> 将于 <when>（UTC）接替 <from>
 * 作为您的对接人…" (the server writes names, not login ids, and an external
 * account may not look them up), or null for another notice.
 */
export function noticeNames(text: string): { to: string; from: string } | null {
  const m = /^(.+?) 将于 .+?接替 (.+?) 作为您的对接人/.exec(text);
  return m ? { to: m[1].trim(), from: m[2].trim() } : null;
}

/**
 * The name of who takes over in `t`, from the notices of the contact's 1:1:
 * the one posted with the transfer (same time), else the nearest in time.
 */
export function takeoverName(
  messages: readonly { sender: string; text: string; time_ms: number; recalled?: boolean }[],
  t: Pick<Transfer, 'created_ms'>,
): string | null {
  let best: { name: string; gap: number } | null = null;
  for (const m of messages) {
    if (m.sender !== HANDOVER_SENDER || m.recalled) continue;
    const names = noticeNames(m.text);
    if (!names) continue;
    const gap = Math.abs(m.time_ms - t.created_ms);
    if (!best || gap < best.gap) best = { name: names.to, gap };
  }
  return best?.name ?? null;
}
