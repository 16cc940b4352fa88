// An announcement body: the server's blocks as DOM (never HTML). Links
// only for http and https addresses, opened in a new tab without the
// opener or a referrer.
import { isSafeLink, type Block, type Run } from '../../logic/richtext.ts';

function Runs({ runs }: { runs: readonly Run[] }) {
  return (
    <>
      {runs.map((r, i) => {
        if (!r || typeof r.text !== 'string') return null;
        const inner = r.bold ? <strong>{r.text}</strong> : r.text;
        return isSafeLink(r.link) ? (
          <a key={i} href={r.link} rel="noopener noreferrer" target="_blank">
            {inner}
          </a>
        ) : (
          <span key={i}>{inner}</span>
        );
      })}
    </>
  );
}

function items(list: unknown): Run[][] {
  return Array.isArray(list) ? list.filter(Array.isArray) : [];
}

export function RichText({ blocks, testid }: { blocks: readonly Block[] | undefined; testid?: string }) {
  return (
    <div class="rich" data-testid={testid}>
      {(blocks ?? []).map((b, i) => {
        if (!b || typeof b !== 'object') return null;
        if ('paragraph' in b && Array.isArray(b.paragraph)) {
          return (
            <p key={i}>
              <Runs runs={b.paragraph} />
            </p>
          );
        }
        if ('bullets' in b) {
          return (
            <ul key={i}>
              {items(b.bullets).map((it, j) => (
                <li key={j}>
                  <Runs runs={it} />
                </li>
              ))}
            </ul>
          );
        }
        if ('numbered' in b) {
          return (
            <ol key={i}>
              {items(b.numbered).map((it, j) => (
                <li key={j}>
                  <Runs runs={it} />
                </li>
              ))}
            </ol>
          );
        }
        return null;
      })}
    </div>
  );
}
