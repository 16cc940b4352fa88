import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { AdminError } from './api.ts';
import { ct } from './strings.ts';

export type Flash = { kind: 'ok' | 'error'; text: string } | null;

/** A status line: results of actions and errors, announced to screen readers. */
export function FlashLine(props: { flash: Flash }) {
  const f = props.flash;
  return (
    <p class={f ? `flash ${f.kind}` : 'flash'} role={f?.kind === 'error' ? 'alert' : 'status'} data-testid="flash">
      {f?.text ?? ''}
    </p>
  );
}

export function errorText(e: unknown): string {
  if (e instanceof AdminError && e.status === 403) return ct('forbiddenHere', { msg: e.message });
  if (e instanceof AdminError) return ct('error', { msg: `${e.message} (${e.code})` });
  return ct('error', { msg: e instanceof Error ? e.message : String(e) });
}

/** Run an action with a busy flag and a flash line for its outcome. */
export function useAction(): {
  busy: boolean;
  flash: Flash;
  setFlash: (f: Flash) => void;
  run: (fn: () => Promise<string | void>) => Promise<boolean>;
} {
  const [busy, setBusy] = useState(false);
  const [flash, setFlash] = useState<Flash>(null);
  const run = async (fn: () => Promise<string | void>) => {
    setBusy(true);
    setFlash(null);
    try {
      const msg = await fn();
      if (msg) setFlash({ kind: 'ok', text: msg });
      return true;
    } catch (e) {
      setFlash({ kind: 'error', text: errorText(e) });
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, flash, setFlash, run };
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint ? <span class="field-hint">{props.hint}</span> : null}
    </label>
  );
}

export function Section(props: { title: string; actions?: ComponentChildren; children: ComponentChildren; testid?: string }) {
  return (
    <section class="card" data-testid={props.testid} aria-label={props.title}>
      <div class="card-head">
        <h2>{props.title}</h2>
        <div class="card-actions">{props.actions}</div>
      </div>
      {props.children}
    </section>
  );
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Hand a file to the browser's downloads. */
export function saveBlob(blob: Blob, name: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}
