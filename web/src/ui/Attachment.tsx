// An attachment inside a message: an image as its thumbnail (a click
// opens the picture viewer), a file as a card with a download button, a
// voice note as a player with its duration. Bytes come through the
// session's FileCache (fetched with the token, shown by object URL).
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api.ts';
import { t } from '../i18n.ts';
import { clock, fitBox, humanSize, type FileView } from '../logic/files.ts';
import { saveFile, type Variant } from '../files.ts';
import { errorText, type Store } from '../state.ts';
import { FileIcon } from './Icons.tsx';

/** Thumbnails are drawn at most this big (CSS px); the server's are ≤ 320. */
const THUMB_BOX = 240;
/** An image without a thumbnail is shown from its own bytes up to this size. */
const INLINE_FULL_MAX = 2 * 1024 * 1024;

/** How an attachment reads in one line (conversation list, quotes, replies). */
export function fileLabel(f: FileView): string {
  if (f.kind === 'image') return t('imagePreview');
  if (f.kind === 'voice') return t('voicePreview', { time: clock(f.duration_ms ?? 0) });
  return t('filePreview', { name: f.name });
}

/** Why a file cannot be shown, in words. */
export function fileError(e: unknown): string {
  if (e instanceof ApiError && e.status === 404) return t('fileGone');
  if (e instanceof ApiError && e.status === 403) return t('fileForbidden');
  return errorText(e);
}

/** An entry of the file cache while the view is mounted (null id: none). */
export function useFile(store: Store, id: string | null, variant: Variant) {
  const [, setV] = useState(0);
  useEffect(() => {
    if (!id) return;
    return store.files.acquire(id, variant, () => setV((v) => v + 1));
  }, [store, id, variant]);
  return id ? store.files.state(id, variant) : { url: null, error: null, loading: false };
}

export function Attachment(props: { store: Store; file: FileView; onOpenImage: (f: FileView) => void }) {
  const f = props.file;
  if (f.kind === 'image') return <ImageThumb {...props} />;
  if (f.kind === 'voice') return <VoiceNote store={props.store} file={f} />;
  return <FileCard store={props.store} file={f} />;
}

function ImageThumb({ store, file, onOpenImage }: { store: Store; file: FileView; onOpenImage: (f: FileView) => void }) {
  const variant: Variant | null = file.thumbnail ? 'thumbnail' : file.size <= INLINE_FULL_MAX ? 'full' : null;
  const s = useFile(store, variant ? file.id : null, variant ?? 'thumbnail');
  const [broken, setBroken] = useState(false);
  // The row's height is known before the picture arrives (the list measures rows once).
  const box = fitBox(file.width, file.height, THUMB_BOX) ?? { width: 180, height: 135 };
  const style = { width: `${box.width}px`, height: `${box.height}px` };
  return (
    <button
      type="button"
      class="att-image"
      style={style}
      aria-label={t('openImage', { name: file.name })}
      data-testid="attachment-image"
      data-file={file.id}
      onClick={() => onOpenImage(file)}
    >
      {broken ? (
        <span class="att-image-msg" role="alert">
          {t('imageFailed')}
        </span>
      ) : s.url ? (
        <img
          src={s.url}
          alt={file.name}
          width={box.width}
          height={box.height}
          data-testid="attachment-thumb"
          onError={() => {
            if (variant && s.url?.startsWith('blob:')) store.files.fallbackToDataUrl(file.id, variant).catch(() => setBroken(true));
            else setBroken(true);
          }}
        />
      ) : s.error ? (
        <span class="att-image-msg" role="alert">
          {fileError(s.error)}
        </span>
      ) : variant ? (
        <span class="att-image-msg" aria-hidden="true">
          {t('loading')}
        </span>
      ) : (
        <span class="att-image-msg">
          {file.name} · {humanSize(file.size)}
        </span>
      )}
    </button>
  );
}

/** Download with progress and the error, for a file card or the viewer. */
export function useDownload(store: Store, file: FileView) {
  const [pct, setPct] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ctrl = useRef<AbortController | null>(null);
  // Leaving the chat stops a download in progress.
  useEffect(() => () => ctrl.current?.abort(), []);
  const start = async () => {
    if (pct !== null) return;
    setError(null);
    setPct(0);
    const c = new AbortController();
    ctrl.current = c;
    try {
      await saveFile(store.api, file.id, file.name, {
        signal: c.signal,
        onProgress: (loaded, total) => setPct(Math.min(100, Math.floor((loaded / (total || file.size || 1)) * 100))),
      });
    } catch (e) {
      if (!c.signal.aborted) setError(t('downloadFailed', { msg: fileError(e) }));
    } finally {
      ctrl.current = null;
      setPct(null);
    }
  };
  return { pct, error, start };
}

function FileCard({ store, file }: { store: Store; file: FileView }) {
  const d = useDownload(store, file);
  return (
    <div class="att-file" data-testid="attachment-file" data-file={file.id}>
      <FileIcon />
      <span class="att-file-text">
        <span class="att-name" data-testid="attachment-name" title={file.name}>
          {file.name}
        </span>
        <span class="muted att-size" data-testid="attachment-size">
          {humanSize(file.size)}
        </span>
        {d.error && (
          <span class="warn" role="alert">
            {d.error}
          </span>
        )}
      </span>
      <button
        type="button"
        class="small"
        onClick={d.start}
        disabled={d.pct !== null}
        aria-label={t('downloadName', { name: file.name })}
        data-testid="attachment-download"
      >
        {d.pct !== null ? t('downloading', { pct: `${d.pct}%` }) : t('download')}
      </button>
    </div>
  );
}

/**
 * A voice note loads when played (not when scrolled past: many notes on a
 * thin link add up), then is a native player.
 */
function VoiceNote({ store, file }: { store: Store; file: FileView }) {
  const [wanted, setWanted] = useState(false);
  const [failed, setFailed] = useState(false);
  const s = useFile(store, wanted ? file.id : null, 'full');
  const time = clock(file.duration_ms ?? 0);
  const d = useDownload(store, file);
  return (
    <div class="att-voice" data-testid="attachment-voice" data-file={file.id}>
      {!wanted ? (
        <button type="button" class="att-play" onClick={() => setWanted(true)} aria-label={t('playVoice', { time })} data-testid="voice-play">
          <span aria-hidden="true">▶</span> {t('voiceLabel')}
        </button>
      ) : s.url && !failed ? (
        <audio controls autoPlay src={s.url} onError={() => setFailed(true)} aria-label={t('voiceLabel')} data-testid="voice-audio" />
      ) : s.error || failed ? (
        <span class="warn" role="alert">
          {s.error ? fileError(s.error) : t('cannotPlay')}{' '}
          {failed && (
            <button type="button" class="link-btn" onClick={d.start}>
              {t('download')}
            </button>
          )}
        </span>
      ) : (
        <span class="muted" role="status">
          {t('loading')}
        </span>
      )}
      <span class="muted att-duration" data-testid="voice-duration">
        {time}
      </span>
    </div>
  );
}
