// Pure helpers of external contacts (外部联系人): a customer group's
// keyword auto-replies as the editor holds them and as the server takes
// them, the login ids an invited person may choose, and invitation links.
// The server's rules (node/src/domain/external.rs) are the authority; these
// only spare a round trip and explain a refusal at the rule it concerns.

export type MatchMode = 'exact' | 'contains';

/** A rule as `GET|PUT /v1/external/groups/{conv}/auto-replies` carries it. */
export interface Rule {
  keywords: string[];
  mode: MatchMode;
  answer: string;
}

/** A rule in the editor: the keywords as typed (separated by commas, 、 or new lines). */
export interface RuleDraft {
  keywords: string;
  mode: MatchMode;
  answer: string;
}

/** The server's limits (MAX_AUTO_REPLY_RULES, MAX_KEYWORDS, MAX_KEYWORD_CHARS, MAX_ANSWER_CHARS). */
export const LIMITS = { rules: 50, keywords: 20, keywordChars: 64, answerChars: 1000 } as const;

/** Keywords from what was typed: split, trimmed, empty ones dropped, repeats (ignoring case) once. */
export function splitKeywords(text: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const part of text.split(/[,，;；、\n\r]+/)) {
    const k = part.trim();
    if (!k) continue;
    const low = k.toLowerCase();
    if (seen.has(low)) continue;
    seen.add(low);
    out.push(k);
  }
  return out;
}

export function draftOf(r: Rule): RuleDraft {
  return { keywords: r.keywords.join(', '), mode: r.mode, answer: r.answer };
}

export function emptyDraft(): RuleDraft {
  return { keywords: '', mode: 'contains', answer: '' };
}

export type RuleProblem = 'tooMany' | 'noKeywords' | 'tooManyKeywords' | 'keywordTooLong' | 'noAnswer' | 'answerTooLong';

const chars = (s: string) => [...s].length;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The body of the PUT from the editor's rows, or the first problem and the
 * row (0-based) it is in.
 */
export function rulesFromDrafts(drafts: readonly RuleDraft[]): { rules: Rule[] } | { problem: RuleProblem; index: number } {
  if (drafts.length > LIMITS.rules) return { problem: 'tooMany', index: LIMITS.rules };
  const rules: Rule[] = [];
  for (let i = 0; i < drafts.length; i++) {
    const d = drafts[i];
    const keywords = splitKeywords(d.keywords);
    if (!keywords.length) return { problem: 'noKeywords', index: i };
    if (keywords.length > LIMITS.keywords) return { problem: 'tooManyKeywords', index: i };
    if (keywords.some((k) => chars(k) > LIMITS.keywordChars || CONTROL.test(k))) return { problem: 'keywordTooLong', index: i };
    if (!d.answer.trim()) return { problem: 'noAnswer', index: i };
    if (chars(d.answer) > LIMITS.answerChars) return { problem: 'answerTooLong', index: i };
    rules.push({ keywords, mode: d.mode === 'exact' ? 'exact' : 'contains', answer: d.answer });
  }
  return { rules };
}

/** Whether `text` triggers the rule, as the server decides (trimmed, ignoring case). */
export function ruleMatches(r: Rule, text: string): boolean {
  const t = text.trim().toLowerCase();
  return r.keywords.some((k) => {
    const kw = k.trim().toLowerCase();
    return r.mode === 'exact' ? t === kw : t.includes(kw);
  });
}

/** The first rule that answers `text` (what the group's assistant would say), or null. */
export function firstMatch(rules: readonly Rule[], text: string): Rule | null {
  if (!text) return null;
  return rules.find((r) => ruleMatches(r, text)) ?? null;
}

/** A login id an invited person may choose: 1–64 of A–Z a–z 0–9 _ . @ - */
export function validUserid(u: string): boolean {
  return /^[A-Za-z0-9_.@-]{1,64}$/.test(u);
}

/** The full address of an invitation's link (`/#/accept/<code>`) on this node. */
export function inviteUrl(origin: string, link: string): string {
  try {
    return new URL(link, origin).href;
  } catch {
    return link;
  }
}

/** The code from what a person pasted: the code itself or a whole invitation link. */
export function inviteCode(input: string): string {
  const s = input.trim();
  const m = /#\/accept\/([^/?#\s]+)/.exec(s);
  if (m) {
    try {
      return decodeURIComponent(m[1]);
    } catch {
      return m[1];
    }
  }
  return s;
}

/**
 * Senders that are not accounts: hand-over notices (`system:handover`) and
 * a customer group's auto-replies (`assistant:<conv>`); the i18n key of
 * what to call them.
 */
export function systemSender(userid: string): 'systemSender' | 'assistantSender' | null {
  if (userid.startsWith('system:')) return 'systemSender';
  if (userid.startsWith('assistant:')) return 'assistantSender';
  return null;
}
