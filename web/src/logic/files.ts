// Attachments (files, images, voice notes): pure logic, no DOM,
// unit-tested. What the server says a file is (`FileView`), how the
// client chooses a kind and an upload path, chunk arithmetic of the
// resumable upload, and how an attachment is named in previews.

export type FileKind = 'file' | 'image' | 'voice';

/** A stored file as the server describes it (`{"file": FileView}`). */
export interface FileView {
  id: string;
  name: string;
  size: number;
  mime: string;
  kind: FileKind;
  sha256: string;
  width?: number | null;
  height?: number | null;
  duration_ms?: number | null;
  thumbnail: boolean;
  created_ms: number;
  uploader: string;
}

/** Bigger files go through the resumable upload (chunks, progress, resume). */
export const RESUMABLE_ABOVE = 8 * 1024 * 1024;

/** The longest voice note the recorder takes. */
export const VOICE_MAX_MS = 60_000;

/**
 * Raster images a browser shows and the server thumbnails are sent as
 * images; everything else (SVG included: it is a document, not a
 * picture) as a file. The server sniffs the bytes either way: this only
 * says how the sender wants it shown.
 */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** The server thumbnails images up to this size; bigger pictures go as files. */
export const IMAGE_MAX = 32 * 1024 * 1024;

export function kindOf(type: string, size: number): FileKind {
  return IMAGE_TYPES.has(type.toLowerCase()) && size <= IMAGE_MAX ? 'image' : 'file';
}

/** Sizes as people read them: 812 B, 1.2 KB, 34 MB, 1.1 GB (powers of 1024). */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = v >= 100 ? Math.round(v).toString() : (Math.round(v * 10) / 10).toString();
  return `${s} ${units[i]}`;
}

/** A duration as m:ss (0:07, 1:00). */
export function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${s.toString().padStart(2, '0')}`;
}

/** The byte range of chunk `index` of a `size`-byte file cut in `chunkSize` pieces. */
export function chunkRange(size: number, chunkSize: number, index: number): { start: number; end: number } {
  const start = index * chunkSize;
  return { start, end: Math.min(size, start + chunkSize) };
}

/** Chunk indices the server does not have yet, in order. */
export function missingChunks(chunks: number, received: readonly number[]): number[] {
  const have = new Set(received);
  const out: number[] = [];
  for (let i = 0; i < chunks; i++) if (!have.has(i)) out.push(i);
  return out;
}

/**
 * Progress of an upload in [0, 1]: whole chunks done plus the bytes of the
 * chunk on the wire (the simple path is one "chunk" of the whole file).
 */
export function uploadFraction(size: number, doneBytes: number, inFlight: number): number {
  if (size <= 0) return doneBytes > 0 || inFlight > 0 ? 1 : 0;
  return Math.max(0, Math.min(1, (doneBytes + inFlight) / size));
}

/** The bytes already confirmed of a resumable upload. */
export function receivedBytes(size: number, chunkSize: number, received: readonly number[]): number {
  let n = 0;
  for (const i of new Set(received)) {
    const r = chunkRange(size, chunkSize, i);
    if (r.end > r.start) n += r.end - r.start;
  }
  return n;
}

/**
 * How big to draw an image (thumbnail) before it has loaded, so the
 * message list knows the row's height at once: the server's width and
 * height scaled into a `max`×`max` box, never enlarged. Null when the
 * server did not say.
 */
export function fitBox(
  width: number | null | undefined,
  height: number | null | undefined,
  max: number,
): { width: number; height: number } | null {
  if (!width || !height || width <= 0 || height <= 0) return null;
  const scale = Math.min(1, max / width, max / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** A name for a voice note recorded now (`voice-20261203-142501.webm`). */
export function voiceName(mime: string, now: Date): string {
  const ext = /ogg/i.test(mime) ? 'ogg' : /mp4|aac|m4a/i.test(mime) ? 'm4a' : 'webm';
  const p = (n: number) => n.toString().padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `voice-${stamp}.${ext}`;
}
