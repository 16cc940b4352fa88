import { memo } from './memo.ts';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fullTime, messageTime, t } from '../i18n.ts';
import { go, href } from '../router.ts';
import {
  RECALL_WINDOW_MS,
  errorText,
  isGroupConv,
  systemSender,
  type ConvState,
  type OutboxItem,
  type Store,
} from '../state.ts';
import type { Message } from '../logic/messages.ts';
import { humanSize, kindOf, uploadFraction, voiceName, type FileView } from '../logic/files.ts';
import type { UploadItem } from '../attachments.ts';
import { Attachment, fileLabel } from './Attachment.tsx';
import { FileIcon } from './Icons.tsx';
import { useExternal, useFiles } from './lazy.ts';
import { Avatar } from './Avatar.tsx';
import { Composer } from './Composer.tsx';
import { ReceiptsDialog } from './ReceiptsDialog.tsx';
import { GroupSettings } from './GroupSettings.tsx';
import { ExternalBadge } from './ExternalBadge.tsx';
import { VirtualList } from './VirtualList.tsx';
import { useNarrow, useStore } from './hooks.ts';

type Row =
  | { key: string; kind: 'msg'; m: Message }
  | { key: string; kind: 'pending'; o: OutboxItem }
  | { key: string; kind: 'upload'; u: UploadItem };

/** A drag that carries files (not text or a link). */
function carriesFiles(e: DragEvent): boolean {
  return !!e.dataTransfer && Array.from(e.dataTransfer.types).includes('Files');
}

/** How many other members have read `seq`, from a sorted list of their markers. */
function countAtLeast(sorted: readonly number[], seq: number): number {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (sorted[m] >= seq) b = m;
    else a = m + 1;
  }
  return sorted.length - a;
}

export function Chat({ convId, direct }: { convId: string | null; direct?: string }) {
  const store = useStore();
  const narrow = useNarrow();
  const cs = convId ? store.conversations.get(convId) : undefined;
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [receiptsFor, setReceiptsFor] = useState<number | null>(null);
  const [settings, setSettings] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [sentSignal, setSentSignal] = useState(0);
  const [now, setNow] = useState(Date.now());
  const [viewing, setViewing] = useState<FileView | null>(null);
  const [dragging, setDragging] = useState(false);
  const dragDepth = useRef(0);
  const fileViews = useFiles(viewing !== null);
  const me = store.api.userid ?? '';
  // An external account's 1:1: the hand-overs of this employee it may object to.
  const handovers = store.handovers && cs?.conv.kind === 'contact' && cs.peer ? store.handovers.forEmployee(cs.peer) : [];
  const XV = useExternal(handovers.length > 0).views;

  // Recall buttons disappear when the window has passed.
  useEffect(() => {
    const i = setInterval(() => setNow(Date.now()), 10000);
    return () => clearInterval(i);
  }, []);

  // A file dropped beside the chat must not make the browser leave the page to show it.
  useEffect(() => {
    const refuse = (e: DragEvent) => {
      if (!carriesFiles(e) || e.defaultPrevented) return; // the chat took it
      e.preventDefault();
      if (e.type === 'dragover' && e.dataTransfer) e.dataTransfer.dropEffect = 'none';
    };
    window.addEventListener('dragover', refuse);
    window.addEventListener('drop', refuse);
    return () => {
      window.removeEventListener('dragover', refuse);
      window.removeEventListener('drop', refuse);
    };
  }, []);

  const version = cs?.version ?? 0;
  const pending = convId ? store.pending(convId) : store.pending(null, direct);
  const uploads = store.uploads.shownIn(convId, direct);
  const rows: Row[] = useMemo(() => {
    const out: Row[] = [];
    if (cs) for (const m of cs.log.all()) out.push({ key: `m${m.seq}`, kind: 'msg', m });
    // What is still on its way, in the order it was started.
    const local: (Row & { at: number })[] = [];
    for (const o of pending) {
      if (o.matchedSeq !== null && cs?.log.get(o.matchedSeq)) continue;
      local.push({ key: `p${o.id}`, kind: 'pending', o, at: o.createdAt });
    }
    for (const u of uploads) local.push({ key: `u${u.id}`, kind: 'upload', u, at: u.createdAt });
    local.sort((a, b) => a.at - b.at);
    return out.concat(local);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [
    version,
    cs,
    pending.map((o) => `${o.id}:${o.state}:${o.matchedSeq}`).join(','),
    uploads.map((u) => `${u.id}:${u.state}`).join(','),
  ]);

  // Sorted read markers of the other members (receipts of my messages).
  const othersRead = useMemo(() => {
    if (!cs?.members) return null;
    const list: number[] = [];
    for (const [u, m] of cs.members) if (u !== me) list.push(m.read_seq);
    return list.sort((a, b) => a - b);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version, cs, me]);

  if (convId && !cs) {
    return (
      <section class="chat">
        <p class="empty" role="status">
          {t('loading')}
        </p>
      </section>
    );
  }

  const title = cs ? store.convTitle(cs) : store.name(direct ?? '');
  const isGroup = !!cs && isGroupConv(cs.conv);
  const dissolved = !!cs?.conv.dissolved;
  const target = cs ? { conv: cs.conv.id } : { direct: direct! };

  const receiptLabel = (m: Message): { text: string; state: string } | null => {
    if (m.sender !== me || m.recalled || !othersRead) return null;
    const total = othersRead.length;
    if (!total) return null;
    const read = countAtLeast(othersRead, m.seq);
    if (!isGroup) return read >= total ? { text: t('read'), state: 'read' } : { text: t('unread'), state: 'unread' };
    if (read >= total) return { text: t('allRead'), state: 'read' };
    return { text: t('nUnread', { n: total - read }), state: 'unread' };
  };

  const doRecall = async (m: Message) => {
    setError(null);
    try {
      await store.recall(m.conversation, m.seq);
    } catch (e) {
      setError(t('recallFailed', { msg: errorText(e) }));
    }
  };

  const attach = (list: File[]) => {
    for (const f of list) store.uploads.add(target, f, f.name || 'file', kindOf(f.type, f.size));
    setSentSignal((x) => x + 1);
  };

  const renderRow = (row: Row) => {
    if (row.kind === 'pending') {
      return <PendingRow key={row.key} rowKey={row.key} o={row.o} store={store} name={store.me?.name ?? me} />;
    }
    if (row.kind === 'upload') {
      return <UploadRow key={row.key} rowKey={row.key} u={row.u} store={store} name={store.me?.name ?? me} />;
    }
    const m = row.m;
    const quoted = m.reply_to ? cs?.log.get(m.reply_to) : undefined;
    return (
      <MessageRow
        key={row.key}
        rowKey={row.key}
        m={m}
        mine={m.sender === me}
        showSender={
          isGroup ||
          !!systemSender(m.sender) ||
          // A contact's 1:1 keeps the history of whoever served them before.
          (cs?.conv.kind === 'contact' && m.sender !== me && m.sender !== cs.peer)
        }
        system={!!systemSender(m.sender)}
        senderName={m.sender.startsWith('app:') && cs ? title : store.name(m.sender)}
        quotedName={quoted ? store.name(quoted.sender) : ''}
        quoted={quoted}
        mentionNames={m.mentions.map((u) => store.name(u))}
        receipt={receiptLabel(m)}
        canRecall={m.sender === me && !m.recalled && now - m.time_ms < RECALL_WINDOW_MS}
        onReply={dissolved ? undefined : () => setReplyTo(m)}
        onRecall={() => doRecall(m)}
        onReceipts={() => setReceiptsFor(m.seq)}
        store={store}
        onOpenImage={setViewing}
      />
    );
  };

  const dropZone = dissolved
    ? {}
    : {
        onDragEnter: (e: DragEvent) => {
          if (!carriesFiles(e)) return;
          e.preventDefault();
          dragDepth.current++;
          setDragging(true);
        },
        onDragOver: (e: DragEvent) => {
          if (!carriesFiles(e)) return;
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
        },
        onDragLeave: () => {
          dragDepth.current = Math.max(0, dragDepth.current - 1);
          if (!dragDepth.current) setDragging(false);
        },
        onDrop: (e: DragEvent) => {
          if (!carriesFiles(e)) return;
          e.preventDefault();
          dragDepth.current = 0;
          setDragging(false);
          attach([...(e.dataTransfer?.files ?? [])]);
        },
      };

  const header = cs ? (
    <div class="list-head">
      {cs.loadingOlder || cs.loadingPage ? (
        <p class="muted" role="status">
          {t('loadingOlder')}
        </p>
      ) : cs.log.hasOlder ? (
        <button type="button" class="link-btn" onClick={() => store.loadOlder(cs.conv.id)} data-testid="load-older">
          {t('loadOlder')}
        </button>
      ) : cs.log.loaded ? (
        <p class="muted">{t('beginning')}</p>
      ) : null}
    </div>
  ) : null;

  return (
    <section class="chat" aria-labelledby="chat-title" data-testid="chat" data-conv={cs?.conv.id ?? ''} {...dropZone}>
      {dragging && (
        <div class="drop-hint" aria-hidden="true">
          {t('dropFiles')}
        </div>
      )}
      <header class="chat-head">
        {narrow && (
          <button type="button" class="icon-btn" aria-label={t('back')} onClick={() => go({ name: 'chats' })} data-testid="back">
            ‹
          </button>
        )}
        <Avatar name={title} group={isGroup} small />
        <div class="chat-title-box">
          <h2 id="chat-title" data-testid="chat-title">
            {title}
          </h2>
          {isGroup && cs && (
            <span class="muted">
              {cs.conv.kind === 'customer' ? `${t('customerGroupTag')} · ` : ''}
              {t('memberCount', { n: cs.conv.member_count })}
            </span>
          )}
          {cs && <ExternalBadge store={store} cs={cs} />}
        </div>
        {cs && cs.conv.kind === 'customer' && !dissolved && !store.external && cs.conv.owner === me && (
          <a class="btn" href={href({ name: 'external-group', id: cs.conv.id })} data-testid="auto-replies-link">
            {t('autoReplies')}
          </a>
        )}
        {isGroup && cs && !dissolved && (
          <button type="button" onClick={() => setSettings(true)} data-testid="group-settings">
            {t('groupInfo')}
          </button>
        )}
      </header>
      {XV && handovers.map((h) => <XV.HandoverBanner key={h.t.id} h={h} />)}
      {cs?.conv.announcement && (
        <div class="announcement" data-testid="announcement">
          <strong>{t('announcement')}：</strong>
          {cs.conv.announcement}
        </div>
      )}
      {error && (
        <p class="form-error banner" role="alert">
          {error}
        </p>
      )}
      <VirtualList
        rows={rows}
        renderRow={renderRow}
        header={header}
        label={t('messages')}
        testid="message-list"
        onNearTop={() => cs && store.loadOlder(cs.conv.id)}
        bottomSignal={sentSignal}
      />
      {dissolved ? (
        <p class="muted composer-closed">{t('dissolved')}</p>
      ) : (
        <Composer
          key={cs?.conv.id ?? direct}
          store={store}
          cs={cs}
          replyTo={replyTo}
          onCancelReply={() => setReplyTo(null)}
          onSend={(text, mentions, mentionAll) => {
            store.send(target, text, mentions, replyTo?.seq ?? null, mentionAll);
            setReplyTo(null);
            setSentSignal((x) => x + 1);
          }}
          onAttach={attach}
          onVoice={(audio, ms, mime) => {
            store.uploads.add(target, audio, voiceName(mime, new Date()), 'voice', Math.round(ms));
            setSentSignal((x) => x + 1);
          }}
        />
      )}
      {receiptsFor !== null && cs && (
        <ReceiptsDialog store={store} cs={cs} seq={receiptsFor} onClose={() => setReceiptsFor(null)} />
      )}
      {settings && cs && <GroupSettings cs={cs} onClose={() => setSettings(false)} />}
      {viewing && fileViews.views && <fileViews.views.Lightbox store={store} file={viewing} onClose={() => setViewing(null)} />}
      {viewing && fileViews.failed && (
        <p class="form-error banner" role="alert">
          {t('loadFailed')}{' '}
          <button type="button" class="link-btn" onClick={fileViews.retry}>
            {t('retry')}
          </button>
        </p>
      )}
    </section>
  );
}

/** The text with mentions highlighted. */
/** A link an app sent, if it is one a browser may open (http/https only). */
function safeUrl(u: string | undefined): string | null {
  if (!u) return null;
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The links of an app's card or news message (its text is already the
 * plain rendering above). Links open in a new tab without a referrer.
 */
function RichLinks({ m }: { m: Message }) {
  const r = m.rich;
  if (!r || m.recalled) return null;
  const links: { href: string; label: string }[] = [];
  if (r.type === 'textcard') {
    const href = safeUrl(r.url);
    if (href) links.push({ href, label: r.btntxt || t('details') });
  } else if (r.type === 'news') {
    for (const a of r.articles ?? []) {
      const href = safeUrl(a.url);
      if (href) links.push({ href, label: a.title || href });
    }
  }
  if (!links.length && !m.safe) return null;
  return (
    <div class="rich-links" data-testid="rich-links">
      {m.safe ? <span class="tag-safe">{t('confidential')}</span> : null}
      {links.map((l) => (
        <a key={l.href + l.label} href={l.href} target="_blank" rel="noopener noreferrer">
          {l.label}
        </a>
      ))}
    </div>
  );
}

function Text({ text, names }: { text: string; names: string[] }) {
  if (!names.length) return <>{text}</>;
  const marks = names.map((n) => `@${n}`).sort((a, b) => b.length - a.length);
  const parts: (string | { m: string })[] = [];
  let rest = text;
  while (rest) {
    let best = -1;
    let which = '';
    for (const mk of marks) {
      const i = rest.indexOf(mk);
      if (i >= 0 && (best < 0 || i < best)) {
        best = i;
        which = mk;
      }
    }
    if (best < 0) {
      parts.push(rest);
      break;
    }
    if (best > 0) parts.push(rest.slice(0, best));
    parts.push({ m: which });
    rest = rest.slice(best + which.length);
  }
  return (
    <>
      {parts.map((p, i) =>
        typeof p === 'string' ? (
          p
        ) : (
          <span key={i} class="mention" data-testid="mention">
            {p.m}
          </span>
        ),
      )}
    </>
  );
}

interface RowProps {
  rowKey: string;
  m: Message;
  mine: boolean;
  showSender: boolean;
  /** From `system:handover` or a customer group's assistant: not a person. */
  system?: boolean;
  senderName: string;
  quoted: Message | undefined;
  quotedName: string;
  mentionNames: string[];
  receipt: { text: string; state: string } | null;
  canRecall: boolean;
  onReply?: () => void;
  onRecall: () => void;
  onReceipts: () => void;
  store: Store;
  onOpenImage: (f: FileView) => void;
}

const MessageRow = memo(
  function MessageRow(p: RowProps) {
    const m = p.m;
    if (m.recalled) {
      return (
        <div class="msg-system" data-key={p.rowKey} data-testid="message-recalled" data-seq={m.seq}>
          {p.mine ? t('youRecalled') : t('recalled', { name: p.senderName })}
        </div>
      );
    }
    return (
      <article
        class={p.mine ? 'msg mine' : p.system ? 'msg sys' : 'msg'}
        data-key={p.rowKey}
        data-testid="message"
        data-seq={m.seq}
        data-sender={m.sender}
        data-mentions={m.mentions.join(',')}
        data-file-kind={m.file?.kind}
        aria-label={`${p.senderName} ${fullTime(m.time_ms)}`}
      >
        <Avatar name={p.senderName} small />
        <div class="msg-body">
          <div class="msg-meta">
            {p.showSender && !p.mine && <span class="msg-sender">{p.senderName}</span>}
            <time dateTime={new Date(m.time_ms).toISOString()} title={fullTime(m.time_ms)}>
              {messageTime(m.time_ms)}
            </time>
          </div>
          {m.reply_to ? (
            <blockquote class="quote" data-testid="quote" aria-label={t('quoted')}>
              {p.quoted ? (
                <>
                  <span class="quote-who">{p.quotedName}: </span>
                  {p.quoted.recalled
                    ? t('recalledPreview')
                    : p.quoted.file
                      ? `${fileLabel(p.quoted.file)} ${p.quoted.text}`
                      : p.quoted.text}
                </>
              ) : (
                `#${m.reply_to} ${t('notLoaded')}`
              )}
            </blockquote>
          ) : null}
          {m.file ? <Attachment store={p.store} file={m.file} onOpenImage={p.onOpenImage} /> : null}
          {m.text || !m.file ? (
            <div class="bubble" data-testid="message-text">
              <Text text={m.text} names={p.mentionNames} />
            </div>
          ) : null}
          <RichLinks m={m} />
          <div class="msg-foot">
            {p.receipt && (
              <button
                type="button"
                class={`receipt ${p.receipt.state}`}
                data-testid="receipt"
                data-state={p.receipt.state}
                onClick={p.onReceipts}
              >
                {p.receipt.text}
              </button>
            )}
            <span class="msg-actions">
              {p.onReply && (
                <button type="button" class="link-btn" onClick={p.onReply} data-testid="reply">
                  {t('reply')}
                </button>
              )}
              {p.canRecall && (
                <button type="button" class="link-btn" onClick={p.onRecall} data-testid="recall">
                  {t('recall')}
                </button>
              )}
            </span>
          </div>
        </div>
      </article>
    );
  },
  (a, b) =>
    a.m === b.m &&
    a.senderName === b.senderName &&
    a.quoted === b.quoted &&
    a.quotedName === b.quotedName &&
    a.receipt?.text === b.receipt?.text &&
    a.canRecall === b.canRecall &&
    a.mentionNames.join() === b.mentionNames.join() &&
    !!a.onReply === !!b.onReply &&
    a.showSender === b.showSender &&
    a.system === b.system,
);

function PendingRow({ rowKey, o, store, name }: { rowKey: string; o: OutboxItem; store: Store; name: string }) {
  return (
    <article
      class={`msg mine pending ${o.state}`}
      data-key={rowKey}
      data-testid="message"
      data-pending={o.state}
      aria-label={name}
    >
      <Avatar name={name} small />
      <div class="msg-body">
        {o.file && (
          <div class="att-file" data-testid="pending-file">
            <FileIcon />
            <span class="att-file-text">
              <span class="att-name">{o.file.kind === 'file' ? o.file.name : `${fileLabel(o.file)} ${o.file.name}`}</span>
              <span class="muted att-size">{humanSize(o.file.size)}</span>
            </span>
          </div>
        )}
        {(o.body.text || !o.file) && (
          <div class="bubble" data-testid="message-text">
            {o.body.text}
          </div>
        )}
        <div class="msg-foot">
          {o.state === 'sending' ? (
            <span class="muted" role="status" data-testid="pending-state">
              {o.attempts > 1 ? t('pending') : t('sending')}…
            </span>
          ) : (
            <>
              <span class="warn" data-testid="pending-state" title={o.error ?? ''}>
                {t('sendFailed')}
              </span>
              <button type="button" class="link-btn" onClick={() => store.resend(o.id)} data-testid="resend">
                {t('resend')}
              </button>
              <button type="button" class="link-btn" onClick={() => store.discard(o.id)}>
                {t('discard')}
              </button>
            </>
          )}
        </div>
      </div>
    </article>
  );
}

/** An attachment being uploaded: progress, cancel; the server's refusal and retry. */
function UploadRow({ rowKey, u, store, name }: { rowKey: string; u: UploadItem; store: Store; name: string }) {
  const pct = Math.floor(uploadFraction(u.progress.total, u.progress.loaded, 0) * 100);
  const failed = u.state === 'failed';
  const chunks = u.progress.chunks;
  return (
    <article
      class={`msg mine pending ${failed ? 'failed' : ''}`}
      data-key={rowKey}
      data-testid="upload"
      data-state={u.state}
      data-name={u.name}
      aria-label={name}
    >
      <Avatar name={name} small />
      <div class="msg-body">
        <div class="att-file upload-card">
          <FileIcon />
          <span class="att-file-text">
            <span class="att-name">{u.name}</span>
            <span class="muted att-size">{humanSize(u.blob.size)}</span>
            {failed ? (
              <span class="warn" role="alert" data-testid="upload-error">
                {t('uploadFailed', { msg: u.error ?? '' })}
              </span>
            ) : (
              <>
                <progress max={100} value={pct} aria-label={`${t('uploading')} ${u.name}`} data-testid="upload-progress" />
                <span class="muted">
                  {t('uploading')} {pct}%
                  {chunks ? ` · ${t('uploadChunks', { done: chunks.done, count: chunks.count })}` : ''}
                </span>
              </>
            )}
          </span>
        </div>
        <div class="msg-foot">
          {failed && u.canRetry && (
            <button type="button" class="link-btn" onClick={() => store.uploads.retry(u.id)} data-testid="upload-retry">
              {t('retry')}
            </button>
          )}
          <button type="button" class="link-btn" onClick={() => store.uploads.cancel(u.id)} data-testid="upload-cancel">
            {failed ? t('discard') : t('cancelUpload')}
          </button>
        </div>
      </div>
    </article>
  );
}

export type { ConvState };
