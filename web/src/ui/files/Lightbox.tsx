// An image attachment at full size in a dialog, with a download link.
import { t } from '../../i18n.ts';
import { humanSize, type FileView } from '../../logic/files.ts';
import type { Store } from '../../state.ts';
import { fileError, useFile } from '../Attachment.tsx';
import { Dialog } from '../Dialog.tsx';

export function Lightbox({ store, file, onClose }: { store: Store; file: FileView; onClose: () => void }) {
  const full = useFile(store, file.id, 'full');
  // The thumbnail (most likely cached already) stands in while the picture loads.
  const thumb = useFile(store, file.thumbnail && !full.url ? file.id : null, 'thumbnail');
  const src = full.url ?? thumb.url;
  return (
    <Dialog title={file.name} onClose={onClose} testid="lightbox" wide>
      <div class="lightbox-stage">
        {src ? (
          <img
            src={src}
            alt={file.name}
            class={full.url ? 'lightbox-img' : 'lightbox-img loading'}
            data-testid={full.url ? 'lightbox-image' : 'lightbox-placeholder'}
            onError={() => {
              if (full.url?.startsWith('blob:')) store.files.fallbackToDataUrl(file.id, 'full');
            }}
          />
        ) : null}
        {full.error ? (
          <p class="warn" role="alert">
            {fileError(full.error)}
          </p>
        ) : !full.url ? (
          <p class="muted" role="status">
            {t('loading')}
          </p>
        ) : null}
      </div>
      <p class="lightbox-foot">
        <span class="muted">
          {file.width && file.height ? `${file.width} × ${file.height} · ` : ''}
          {humanSize(file.size)}
        </span>
        {full.url ? (
          <a href={full.url} download={file.name} class="button-link" data-testid="lightbox-download">
            {t('downloadOriginal')}
          </a>
        ) : null}
      </p>
    </Dialog>
  );
}
