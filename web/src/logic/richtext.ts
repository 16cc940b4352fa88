// Announcement bodies: a tiny markup typed by the publisher, turned into
// the server's safe block structure (never HTML). Pure, unit-tested.
//
//   blank line          ends a paragraph (or a list)
//   - item / * item     a bullet list item
//   1. item / 1、item   a numbered list item
//   **bold**            bold
//   [text](https://…)   a link (http and https only; anything else stays text)
//
// Lines of one paragraph are joined with a space, or directly between two
// CJK characters. An indented line under a list item continues the item.

export interface Run {
  text: string;
  bold: boolean;
  link: string | null;
}

export type Block = { paragraph: Run[] } | { bullets: Run[][] } | { numbered: Run[][] };

/** Whether `url` may be a link: http or https with a host, no spaces or control characters (as the server checks, and stricter). */
export function isSafeLink(url: unknown): url is string {
  if (typeof url !== 'string' || url.length > 2048) return false;
  // The scheme and something after it (the server lets a bare "https://" through).
  if (!/^https?:\/\/./i.test(url)) return false;
  // eslint-disable-next-line no-control-regex
  return !/[\s\u0000-\u001f\u007f-\u009f]/.test(url);
}

const CJK = /[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]/;

/** Two lines of one paragraph: a space between words, nothing between CJK characters. */
export function joinLines(a: string, b: string): string {
  if (!a) return b;
  if (!b) return a;
  return CJK.test(a[a.length - 1]) && CJK.test(b[0]) ? a + b : `${a} ${b}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
const LINK = /^\[([^\]\n]+)\]\(([^\s)]+)\)/;

function push(runs: Run[], text: string, bold: boolean, link: string | null): void {
  if (!text) return;
  const last = runs[runs.length - 1];
  if (last && !link && !last.link && last.bold === bold) last.text += text;
  else runs.push({ text, bold, link });
}

/** One line (or joined lines) of inline markup as runs. */
export function parseInline(src: string): Run[] {
  const text = src.replace(/[\t\n\r]/g, ' ').replace(CONTROL, '');
  const runs: Run[] = [];
  let bold = false;
  let buf = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('**', i) && (bold || text.indexOf('**', i + 2) >= 0)) {
      push(runs, buf, bold, null);
      buf = '';
      bold = !bold;
      i += 2;
      continue;
    }
    if (text[i] === '[') {
      const m = LINK.exec(text.slice(i));
      if (m && isSafeLink(m[2])) {
        push(runs, buf, bold, null);
        buf = '';
        let label = m[1];
        let b = bold;
        const inner = /^\*\*(.+)\*\*$/.exec(label);
        if (inner) {
          label = inner[1];
          b = true;
        }
        push(runs, label, b, m[2]);
        i += m[0].length;
        continue;
      }
    }
    buf += text[i];
    i++;
  }
  push(runs, buf, bold, null);
  // The server refuses empty runs; whitespace-only runs at the ends carry nothing.
  while (runs.length && !runs[0].link && !runs[0].text.trim()) runs.shift();
  while (runs.length && !runs[runs.length - 1].link && !runs[runs.length - 1].text.trim()) runs.pop();
  return runs;
}

const BULLET = /^\s*[-*•]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,4}(?:[.)]\s+|、\s*)(.*)$/;

/** The whole markup as blocks (empty paragraphs and items are dropped). */
export function parseMarkup(src: string): Block[] {
  const blocks: Block[] = [];
  let para: string | null = null;
  let list: { kind: 'bullets' | 'numbered'; items: string[] } | null = null;
  const endPara = () => {
    if (para !== null) {
      const runs = parseInline(para);
      if (runs.length) blocks.push({ paragraph: runs });
    }
    para = null;
  };
  const endList = () => {
    if (list) {
      const items = list.items.map(parseInline).filter((r) => r.length);
      if (items.length) blocks.push(list.kind === 'bullets' ? { bullets: items } : { numbered: items });
    }
    list = null;
  };
  for (const raw of src.replace(/\r\n?/g, '\n').split('\n')) {
    const line = raw.replace(/\t/g, '    ');
    if (!line.trim()) {
      endPara();
      endList();
      continue;
    }
    const b = BULLET.exec(line);
    const n = b ? null : NUMBERED.exec(line);
    if (b || n) {
      const kind = b ? 'bullets' : 'numbered';
      endPara();
      if (list && list.kind !== kind) endList();
      if (!list) list = { kind, items: [] };
      list.items.push((b ?? n)![1].trim());
      continue;
    }
    const l = list as { items: string[] } | null;
    if (l && /^\s{2,}/.test(line)) {
      l.items[l.items.length - 1] = joinLines(l.items[l.items.length - 1], line.trim());
      continue;
    }
    endList();
    para = para === null ? line.trim() : joinLines(para, line.trim());
  }
  endPara();
  endList();
  return blocks;
}

/** Characters of text in a body (the server allows 20,000). */
export function textLength(blocks: readonly Block[]): number {
  let n = 0;
  const runs = (rs: readonly Run[]) => {
    for (const r of rs) n += [...r.text].length;
  };
  for (const b of blocks) {
    if ('paragraph' in b) runs(b.paragraph);
    else for (const item of 'bullets' in b ? b.bullets : b.numbered) runs(item);
  }
  return n;
}
