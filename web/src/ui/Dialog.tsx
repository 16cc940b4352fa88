import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { t } from '../i18n.ts';

let nextId = 0;

/**
 * A modal dialog on the native <dialog> element: focus moves into it and
 * stays there, Escape closes it, and focus returns to where it was.
 */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testid?: string;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const idRef = useRef(`dlg-${++nextId}`);
  useEffect(() => {
    const d = ref.current!;
    const opener = document.activeElement as HTMLElement | null;
    if (!d.open) d.showModal();
    // The opener may have been re-rendered while the dialog was open (a
    // route change or a live update): then focus its successor, found by
    // the same id or test id.
    const id = opener?.id;
    const testid = opener?.getAttribute?.('data-testid');
    return () => {
      if (d.open) d.close();
      const target = opener?.isConnected
        ? opener
        : ((id && document.getElementById(id)) ||
            (testid && document.querySelector<HTMLElement>(`[data-testid="${CSS.escape(testid)}"]`)) ||
            null);
      target?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? 'dialog wide' : 'dialog'}
      aria-labelledby={idRef.current}
      data-testid={props.testid}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <div class="dialog-head">
        <h2 id={idRef.current}>{props.title}</h2>
        <button type="button" class="icon-btn" aria-label={t('close')} onClick={props.onClose}>
          ×
        </button>
      </div>
      <div class="dialog-body">{props.children}</div>
    </dialog>
  );
}
