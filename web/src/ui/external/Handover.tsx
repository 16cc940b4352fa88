// An external account's note of a waiting hand-over (the store's
// `handovers`): who will take over from whom and when (local time), the
// message if any, and 提出异议 / Object with a confirmation; once objected,
// that they stay with the employee who serves them now. Shown in "My
// contacts" and at the top of the 1:1 with that employee.
import { useState } from 'preact/hooks';
import { fullTime } from '../../i18n.ts';
import type { Handover } from '../../logic/handover.ts';
import { href } from '../../router.ts';
import { errorText } from '../../state.ts';
import { ApiError } from '../../api.ts';
import { Dialog } from '../Dialog.tsx';
import { useStore } from '../hooks.ts';
import { xt } from './strings.ts';

export function HandoverBanner({ h, chatLink = false }: { h: Handover; chatLink?: boolean }) {
  const store = useStore();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const hs = store.handovers;
  if (!hs) return null;
  const t = h.t;
  const from = store.name(t.from);
  const to = hs.toName(t);
  const conv = chatLink ? store.contactWith(t.from) : undefined;
  const titleId = `handover-${t.id}-title`;

  const object = async () => {
    setBusy(true);
    setError(null);
    try {
      await hs.object(t.id);
      setConfirming(false);
    } catch (e) {
      setConfirming(false);
      setError(e instanceof ApiError && e.code === 'already_decided' ? xt('handoverEnded') : xt('error', { msg: errorText(e) }));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section
      class={h.objected ? 'handover objected' : 'handover'}
      aria-labelledby={titleId}
      data-testid="handover-banner"
      data-transfer={t.id}
      data-from={t.from}
      data-to={t.to}
      data-state={h.objected ? 'objected' : 'waiting'}
    >
      <h3 class="handover-title" id={titleId}>
        {xt('handoverTitle')}
      </h3>
      <div role="status">
        {h.objected ? (
          <p data-testid="handover-text">{xt('handoverObjected', { from, to })}</p>
        ) : (
          <>
            <p data-testid="handover-text">{xt('handoverWill', { to, from, time: fullTime(t.due_ms) })}</p>
            {t.message && (
              <p class="handover-msg" data-testid="handover-message">
                {xt('handoverMessage', { message: t.message })}
              </p>
            )}
            <p class="muted small">{xt('handoverHint', { from })}</p>
          </>
        )}
      </div>
      {error && (
        <p class="form-error" role="alert" data-testid="handover-error">
          {error}
        </p>
      )}
      <div class="handover-actions">
        {h.objected ? (
          <button type="button" class="small" onClick={() => hs.dismiss(t.id)} data-testid="handover-dismiss">
            {xt('dismiss')}
          </button>
        ) : (
          <button type="button" class="small" onClick={() => setConfirming(true)} data-testid="handover-object">
            {xt('object')}
          </button>
        )}
        {conv && (
          <a class="btn small" href={href({ name: 'chat', id: conv.conv.id })} data-testid="handover-chat">
            {xt('openChat')}
          </a>
        )}
      </div>
      {confirming && (
        <Dialog title={xt('objectTitle')} onClose={() => !busy && setConfirming(false)} testid="handover-confirm">
          <p>{xt('objectConfirm', { from, to })}</p>
          <div class="form-actions">
            <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
              {xt('cancel')}
            </button>
            <button type="button" class="primary" disabled={busy} onClick={() => void object()} data-testid="handover-object-confirm">
              {busy ? xt('objecting') : xt('objectSubmit')}
            </button>
          </div>
        </Dialog>
      )}
    </section>
  );
}

/** Every hand-over shown (the "My contacts" pane), each with a link to its 1:1. */
export function HandoverList() {
  const store = useStore();
  const list = store.handovers?.shown ?? [];
  if (!list.length) return null;
  return (
    <div class="handovers" data-testid="handovers">
      {list.map((h) => (
        <HandoverBanner key={h.t.id} h={h} chatLink />
      ))}
    </div>
  );
}
