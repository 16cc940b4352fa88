// Approvals (审批): what the request form sends and what a request lets
// its viewer do. Pure, unit-tested.

export type FieldType = 'text' | 'number' | 'money' | 'date_range' | 'choice' | 'member';

export interface FieldDef {
  key: string;
  label: string;
  type: FieldType;
  required: boolean;
  options: string[];
}

/** What a form input holds: text, or the two dates of a range. */
export type FormValue = string | { start: string; end: string };

export type SubmitValue = string | { start: string; end: string };

/**
 * The `values` of `POST /v1/approvals`: every filled field as typed
 * (trimmed; the server checks numbers and amounts and says what is
 * wrong), a date range as `{start, end}`; empty fields are left out (the
 * server names a missing required one).
 */
export function submitValues(fields: readonly FieldDef[], form: Readonly<Record<string, FormValue>>): Record<string, SubmitValue> {
  const out: Record<string, SubmitValue> = {};
  for (const f of fields) {
    const v = form[f.key];
    if (v === undefined) continue;
    if (f.type === 'date_range') {
      if (typeof v === 'string') continue;
      const start = v.start.trim();
      const end = v.end.trim();
      if (!start && !end) continue;
      // Half a range: send it so the server says what is missing.
      out[f.key] = { start, end };
      continue;
    }
    const s = typeof v === 'string' ? v.trim() : '';
    if (!s) continue;
    out[f.key] = f.type === 'money' || f.type === 'number' ? s.replace(/[,，\s]/g, '') : s;
  }
  return out;
}

/** The field an error message of the server names (`field amount (…)`, `values.amount: …`), if it is one of these. */
export function fieldOfError(message: string, fields: readonly FieldDef[]): string | null {
  const m = /\bfield ([a-z0-9_-]+)/.exec(message) ?? /\bvalues\.([a-z0-9_-]+)/.exec(message);
  if (!m) return null;
  return fields.some((f) => f.key === m[1]) ? m[1] : null;
}

export interface RequestView {
  applicant: string;
  status: string;
  approvers: { userid: string }[];
}

/** What `me` may do with a request. */
export function allowed(r: RequestView, me: string | null): { decide: boolean; withdraw: boolean } {
  const pending = r.status === 'pending';
  return {
    decide: pending && !!me && r.approvers.some((a) => a.userid === me),
    withdraw: pending && !!me && r.applicant === me,
  };
}

export type Why =
  | { k: 'why_only_applicant' }
  | { k: 'why_no_leader'; n: string }
  | { k: 'why_gone'; who: string }
  | { k: 'why_dept_deleted'; id: string }
  | { k: 'why_leaders_changed' }
  | { k: 'why_leaders_left' }
  | { k: 'why_approver_left' };

/** The server's reason for a skipped or moved step (English text), recognised for translation; null when unknown. */
export function whyOf(why: string): Why | null {
  let m: RegExpExecArray | null;
  if (why === "the applicant is this step's only approver") return { k: 'why_only_applicant' };
  if ((m = /^no leader at level (\d+) above the applicant$/.exec(why))) return { k: 'why_no_leader', n: m[1] };
  if ((m = /^(.+) is no longer active and has no leader above$/.exec(why))) return { k: 'why_gone', who: m[1] };
  if ((m = /^department (\d+) was deleted$/.exec(why))) return { k: 'why_dept_deleted', id: m[1] };
  if (why === "the department's leaders changed") return { k: 'why_leaders_changed' };
  if (why === "the department's leaders left: the step moved up") return { k: 'why_leaders_left' };
  if (why === 'an approver left') return { k: 'why_approver_left' };
  return null;
}
