// A letter avatar (no images: nothing is fetched).
const COLORS = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return Math.abs(h);
}

export function Avatar({ name, group, small }: { name: string; group?: boolean; small?: boolean }) {
  const chars = [...(name || '?')];
  // Chinese names: the last one or two characters; others: the first letter.
  const cjk = /[\u4e00-\u9fff]/.test(name);
  const label = group
    ? chars.filter((c) => c.trim()).slice(0, cjk ? 2 : 1).join('').toUpperCase()
    : cjk
      ? chars.slice(-2).join('')
      : (chars[0] ?? '?').toUpperCase();
  return (
    <span class={`avatar ${COLORS[hash(name) % COLORS.length]}${group ? ' group' : ''}${small ? ' small' : ''}`} aria-hidden="true">
      {label}
    </span>
  );
}
