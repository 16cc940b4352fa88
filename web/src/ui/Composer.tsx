import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { t } from '../i18n.ts';
import { filterMembers, insertMention, mentionQuery, mentionsInText, type Message } from '../logic/messages.ts';
import type { ConvState, Store } from '../state.ts';
import { fileLabel } from './Attachment.tsx';
import { AttachIcon, MicIcon } from './Icons.tsx';
import { useFiles } from './lazy.ts';

const ALL = '@all';

interface Candidate {
  userid: string;
  name: string;
}

/** Whether this browser (and the page's permissions policy) can record voice notes. */
function canRecord(): boolean {
  if (typeof MediaRecorder === 'undefined' || !navigator.mediaDevices?.getUserMedia) return false;
  const d = document as Document & {
    permissionsPolicy?: { allowsFeature(f: string): boolean };
    featurePolicy?: { allowsFeature(f: string): boolean };
  };
  const policy = d.permissionsPolicy ?? d.featurePolicy;
  return policy ? policy.allowsFeature('microphone') : true;
}

/**
 * The message box: Enter sends, Shift+Enter adds a line, `@` opens a
 * list of the conversation's members (arrows move, Enter or Tab picks,
 * Escape closes). Files come from the paperclip, a paste or a drop (the
 * chat handles drops); the microphone records a voice note (held: release
 * to send; clicked: send or cancel), where the browser may record.
 */
export function Composer(props: {
  store: Store;
  cs: ConvState | undefined;
  replyTo: Message | null;
  onCancelReply: () => void;
  onSend: (text: string, mentions: string[], mentionAll: boolean) => void;
  onAttach: (files: File[]) => void;
  onVoice: (audio: Blob, durationMs: number, mime: string) => void;
}) {
  const { store, cs, replyTo } = props;
  const [text, setText] = useState(cs?.draft ?? '');
  const [picked, setPicked] = useState<Candidate[]>([]);
  const [mq, setMq] = useState<{ start: number; query: string } | null>(null);
  const [active, setActive] = useState(0);
  const ta = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const [rec, setRec] = useState<{ holding: boolean; pressedAt: number } | null>(null);
  const [mic] = useState(canRecord);
  const files = useFiles(rec !== null);
  const caretAfter = useRef<number | null>(null);
  const me = store.api.userid;

  // Members to mention (names from the directory).
  const members: Candidate[] = [];
  if (cs?.members) {
    const isAdmin = cs.conv.kind === 'group' && (cs.conv.owner === me || cs.conv.admins.includes(me ?? ''));
    if (isAdmin) members.push({ userid: ALL, name: t('mentionAll') });
    for (const u of cs.members.keys()) if (u !== me) members.push({ userid: u, name: store.name(u) });
  }
  const candidates = mq ? filterMembers(members, mq.query) : [];
  const open = mq !== null && candidates.length > 0;
  const activeIdx = Math.min(active, Math.max(0, candidates.length - 1));

  useLayoutEffect(() => {
    if (caretAfter.current !== null && ta.current) {
      ta.current.setSelectionRange(caretAfter.current, caretAfter.current);
      caretAfter.current = null;
    }
  });

  useEffect(() => {
    if (replyTo) ta.current?.focus();
  }, [replyTo]);

  const update = (value: string, caret: number) => {
    setText(value);
    if (cs) cs.draft = value;
    const q = cs ? mentionQuery(value, caret) : null;
    setMq(q);
    if (!q || q.query !== mq?.query) setActive(0);
  };

  const pick = (c: Candidate) => {
    const el = ta.current;
    if (!el || !mq) return;
    const r = insertMention(text, mq.start, el.selectionStart ?? text.length, c.name);
    setText(r.text);
    if (cs) cs.draft = r.text;
    caretAfter.current = r.caret;
    if (!picked.some((p) => p.userid === c.userid)) setPicked([...picked, c]);
    setMq(null);
    el.focus();
  };

  const submit = () => {
    const body = text.trim();
    if (!body) return;
    const mentions = mentionsInText(text, picked.filter((p) => p.userid !== ALL));
    const all = picked.some((p) => p.userid === ALL) && text.includes(`@${t('mentionAll')}`);
    props.onSend(body, mentions, all);
    setText('');
    if (cs) cs.draft = '';
    setPicked([]);
    setMq(null);
    ta.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.isComposing || e.keyCode === 229) return;
    if (open) {
      if (e.key === 'ArrowDown') {
        e.preventDefault();
        setActive((activeIdx + 1) % candidates.length);
        return;
      }
      if (e.key === 'ArrowUp') {
        e.preventDefault();
        setActive((activeIdx - 1 + candidates.length) % candidates.length);
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        pick(candidates[activeIdx]);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        setMq(null);
        return;
      }
    }
    if (e.key === 'Escape' && replyTo) {
      e.preventDefault();
      props.onCancelReply();
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      submit();
    }
  };

  const optId = (i: number) => `mention-opt-${i}`;
  return (
    <form
      class="composer"
      data-testid="composer-form"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      {replyTo && (
        <div class="replying" data-testid="replying">
          <span class="replying-text">
            {t('replyTo', { name: store.name(replyTo.sender) })}{' '}
            {replyTo.file ? `${fileLabel(replyTo.file)} ${replyTo.text}` : replyTo.text}
          </span>
          <button type="button" class="icon-btn" aria-label={t('cancelReply')} onClick={props.onCancelReply}>
            ×
          </button>
        </div>
      )}
      {open && (
        <ul class="mention-list" id="mention-list" role="listbox" aria-label={t('mentionPicker')} data-testid="mention-list">
          {candidates.map((c, i) => (
            <li
              key={c.userid}
              id={optId(i)}
              role="option"
              aria-selected={i === activeIdx}
              class={i === activeIdx ? 'active' : ''}
              data-testid="mention-option"
              data-userid={c.userid}
              onMouseDown={(e) => {
                e.preventDefault();
                pick(c);
              }}
            >
              <span>{c.name}</span>
              {c.userid !== ALL && <span class="muted"> {c.userid}</span>}
            </li>
          ))}
        </ul>
      )}
      {rec &&
        (files.views ? (
          <files.views.Recorder
            holding={rec.holding}
            pressedAt={rec.pressedAt}
            onSend={props.onVoice}
            onClose={() => setRec(null)}
          />
        ) : (
          <div class="recorder" data-testid="recorder" data-state="loading">
            {files.failed ? (
              <span class="warn" role="alert">
                {t('loadFailed')}{' '}
                <button type="button" class="link-btn" onClick={() => setRec(null)}>
                  {t('close')}
                </button>
              </span>
            ) : (
              <span role="status">{t('loading')}</span>
            )}
          </div>
        ))}
      <div class="composer-row">
        <button
          type="button"
          class="icon-btn tool"
          aria-label={t('attach')}
          title={t('attach')}
          onClick={() => picker.current?.click()}
          data-testid="attach"
        >
          <AttachIcon />
        </button>
        <input
          ref={picker}
          type="file"
          multiple
          hidden
          data-testid="attach-input"
          onChange={(e) => {
            const el = e.target as HTMLInputElement;
            const list = [...(el.files ?? [])];
            el.value = '';
            if (list.length) props.onAttach(list);
          }}
        />
        {mic && (
          <button
            type="button"
            class={rec ? 'icon-btn tool mic active' : 'icon-btn tool mic'}
            aria-label={t('recordVoice')}
            title={t('recordVoice')}
            aria-pressed={rec !== null}
            data-testid="record"
            onPointerDown={(e) => {
              if (e.button !== 0 || rec) return;
              e.preventDefault();
              (e.currentTarget as HTMLElement).setPointerCapture?.(e.pointerId);
              setRec({ holding: true, pressedAt: performance.now() });
            }}
            onPointerUp={() => setRec((r) => (r?.holding ? { ...r, holding: false } : r))}
            onPointerCancel={() => setRec((r) => (r?.holding ? { ...r, holding: false } : r))}
            onContextMenu={(e) => e.preventDefault()}
            onClick={(e) => {
              // The keyboard (Enter, Space): the recorder opens with send and cancel.
              if (e.detail === 0 && !rec) setRec({ holding: false, pressedAt: performance.now() });
            }}
          >
            <MicIcon />
          </button>
        )}
        <label for="composer-input" class="sr-only">
          {t('messageInput')}
        </label>
        <textarea
          id="composer-input"
          ref={ta}
          data-testid="composer"
          rows={2}
          maxLength={4000}
          placeholder={t('messagePlaceholder')}
          value={text}
          aria-autocomplete="list"
          aria-controls={open ? 'mention-list' : undefined}
          aria-activedescendant={open ? optId(activeIdx) : undefined}
          onInput={(e) => {
            const el = e.target as HTMLTextAreaElement;
            update(el.value, el.selectionStart ?? el.value.length);
          }}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            const list = [...(e.clipboardData?.files ?? [])];
            if (!list.length) return;
            e.preventDefault();
            props.onAttach(list);
          }}
          onClick={(e) => {
            const el = e.target as HTMLTextAreaElement;
            setMq(cs ? mentionQuery(el.value, el.selectionStart ?? 0) : null);
          }}
        />
        <button type="submit" class="primary" data-testid="send" disabled={!text.trim()}>
          {t('send')}
        </button>
      </div>
    </form>
  );
}
