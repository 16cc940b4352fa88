// Announcements and approvals as the admin port shows them: the types and
// the page's pure helpers (unit-tested in tests/unit/console-office.test.ts).

export interface Run {
  text: string;
  bold?: boolean;
  link?: string | null;
}

export type Block = { paragraph: Run[] } | { bullets: Run[][] } | { numbered: Run[][] };

export interface Counts {
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
  attachment: { name: string; url: string } | null;
  to: { all: boolean; departments: number[] };
  sending: boolean;
  withdrawn: boolean;
  withdrawn_ms: number;
  counts: Counts;
  body?: Block[];
}

export type ReaderState = 'all' | 'read' | 'unread' | 'late';

export interface Reader {
  userid: string;
  name: string;
  read_ms: number;
  late: boolean;
}

export interface TemplateField {
  key: string;
  label: string;
  type: string;
  required: boolean;
  options: string[];
}

export type FlowStep = { leaders: number } | { user: string } | { any_of: string[] };

export interface Template {
  id: string;
  name: string;
  fields: TemplateField[];
  flow: FlowStep[];
  cc: string[];
  disabled: boolean;
  version: number;
}

export interface TrailEntry {
  time_ms: number;
  actor: string;
  step: number;
  action: string;
  comment?: string;
  reason?: string;
  text?: string;
  why?: string;
  approvers?: string[];
  from?: string[];
  to?: string[];
}

export interface ApprovalRequest {
  id: number;
  template: string;
  template_name: string;
  applicant: string;
  applicant_name: string;
  values: { key: string; label: string; type: string; value: string }[];
  status: string;
  step: number;
  steps: ({ leader_level: number } | { user: string } | { any_of: string[] })[];
  approvers: { userid: string; name: string }[];
  cc: string[];
  submitted_ms: number;
  finished_ms: number;
  trail: TrailEntry[];
}

/** `url` if it may be a link: http or https with something after the scheme, no whitespace or control characters. */
export function safeLink(url: unknown): string | null {
  if (typeof url !== 'string' || url.length > 2048 || !/^https?:\/\/./i.test(url)) return null;
  // eslint-disable-next-line no-control-regex
  return /[\s\u0000-\u001f\u007f-\u009f]/.test(url) ? null : url;
}

/** Local midnight of a `YYYY-MM-DD` date (an `<input type="date">` value), in ms. */
export function dayStart(date: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])).getTime();
}

/** The export's `from_ms`/`to_ms` for two local dates, both days included. */
export function dayRange(from: string, to: string): { from_ms?: number; to_ms?: number } {
  const f = dayStart(from);
  const t = dayStart(to);
  if (t === undefined) return { from_ms: f };
  const d = new Date(t);
  return { from_ms: f, to_ms: new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime() - 1 };
}

/** A template as the editor shows it: `PUT`'s body (options only where given). */
export function templateJson(t: Pick<Template, 'name' | 'fields' | 'flow' | 'cc'>): string {
  return JSON.stringify(
    {
      name: t.name,
      fields: t.fields.map((f) => ({
        key: f.key,
        label: f.label,
        type: f.type,
        required: f.required,
        ...(f.options?.length ? { options: f.options } : {}),
      })),
      flow: t.flow,
      cc: t.cc,
    },
    null,
    2,
  );
}

/** What a new template starts from. */
export const SAMPLE: Pick<Template, 'name' | 'fields' | 'flow' | 'cc'> = {
  name: '',
  fields: [{ key: 'reason', label: '事由', type: 'text', required: true, options: [] }],
  flow: [{ leaders: 1 }],
  cc: [],
};

/**
 * The editor's text as a request body. Only the JSON syntax is checked
 * here; the server checks the rest and says what is wrong.
 */
export function parseTemplate(text: string): { body: Record<string, unknown> } | { error: 'json'; message: string } | { error: 'object' } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: 'json', message: e instanceof Error ? e.message : String(e) };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: 'object' };
  return { body: v as Record<string, unknown> };
}

/** A trail entry's particulars in one line: comment, reason, why, who. */
export function trailDetail(t: TrailEntry): string {
  const moved = t.from || t.to ? `${(t.from ?? []).join(', ')} → ${(t.to ?? []).join(', ')}` : '';
  return [t.comment, t.reason, t.text, t.why, t.approvers?.join(', '), moved].filter(Boolean).join(' · ');
}
