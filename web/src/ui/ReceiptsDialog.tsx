import { useEffect, useState } from 'preact/hooks';
import type { Receipts } from '../api.ts';
import { t } from '../i18n.ts';
import { errorText, type ConvState, type Store } from '../state.ts';
import { Dialog } from './Dialog.tsx';

/** Who has read one of my messages and who has not; live as `read` events arrive. */
export function ReceiptsDialog({ store, cs, seq, onClose }: { store: Store; cs: ConvState; seq: number; onClose: () => void }) {
  const [r, setR] = useState<Receipts | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Refetch when a member's read marker passes this message.
  let readers = 0;
  if (cs.members) for (const m of cs.members.values()) if (m.read_seq >= seq) readers++;
  useEffect(() => {
    let live = true;
    store.api
      .receipts(cs.conv.id, seq)
      .then((x) => live && (setR(x), setError(null)))
      .catch((e) => live && setError(errorText(e)));
    return () => {
      live = false;
    };
  }, [cs.conv.id, seq, readers, store]);
  return (
    <Dialog title={t('receipts')} onClose={onClose} testid="receipts-dialog">
      {error && <p class="form-error" role="alert">{t('error', { msg: error })}</p>}
      {!r && !error && <p role="status">{t('loading')}</p>}
      {r && (
        <div class="receipts">
          <section aria-labelledby="rc-read">
            <h3 id="rc-read">{t('readBy', { n: r.read_count })}</h3>
            <ul data-testid="receipts-read">
              {r.read.map((u) => (
                <li key={u} data-userid={u}>{store.name(u)}</li>
              ))}
            </ul>
          </section>
          <section aria-labelledby="rc-unread">
            <h3 id="rc-unread">{t('unreadBy', { n: r.unread_count })}</h3>
            <ul data-testid="receipts-unread">
              {r.unread.map((u) => (
                <li key={u} data-userid={u}>{store.name(u)}</li>
              ))}
            </ul>
          </section>
        </div>
      )}
    </Dialog>
  );
}
