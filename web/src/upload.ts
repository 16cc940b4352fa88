// Uploading an attachment: one `POST /v1/files` for files up to 8 MiB,
// the resumable upload above that (`/v1/uploads`: chunks, which ones the
// server has, finish). Both end in the server's `FileView`.
//
// Requests go through XMLHttpRequest, the only browser API that reports
// upload progress, with a time-out on stalls rather than on the whole
// request: on a thin branch-office link a 4 MiB chunk may take minutes.
//
// A resumable upload's session lives on the node that started it, so its
// chunks, status and finish go to that node whatever the rest of the page
// does. A chunk is the same bytes whatever happens: after a network error
// the upload asks that node which chunks it holds and sends the others.
// When the node is gone (404 for the session, or no answer several times)
// the upload starts again on the next node, a bounded number of times.
//
// A whole-file POST whose answer was lost is sent again too (at most
// twice): the worst a repeat leaves is a file no message refers to, which
// the server deletes after a while — never a second message (the message
// is sent once, by client_msg_id).

import { ApiError, Cancelled, NetworkError, type Api } from './api.ts';
import {
  RESUMABLE_ABOVE,
  chunkRange,
  missingChunks,
  receivedBytes,
  type FileKind,
  type FileView,
} from './logic/files.ts';

export interface UploadMeta {
  name: string;
  kind: FileKind;
  durationMs?: number;
}

export interface UploadProgress {
  /** Bytes the server has, plus those of the request on the wire. */
  loaded: number;
  total: number;
  /** The resumable path: chunks the server has, of how many. */
  chunks: { done: number; count: number } | null;
}

/** A resumable upload as the server keeps it. */
interface Session {
  upload_id: string;
  chunk_size: number;
  chunks: number;
  received?: number[];
}

/** Codes after which the node should be left (as Api does). */
const LEAVE_NODE = new Set(['no_leader', 'no_quorum', 'unavailable', 'shutting_down']);
/** No byte moved (or no answer came) for this long: the connection is taken for dead. */
const STALL_MS = 60_000;
const ATTEMPTS = 3;
const CHUNK_FAILURES = 8;
/** Network failures in a row after which the session's node is given up. */
const NODE_FAILURES = 3;
const SESSION_RESTARTS = 2;

export function upload(
  api: Api,
  file: Blob,
  meta: UploadMeta,
  onProgress: (p: UploadProgress) => void,
  signal: AbortSignal,
): Promise<FileView> {
  return file.size > RESUMABLE_ABOVE
    ? resumable(api, file, meta, onProgress, signal)
    : whole(api, file, meta, onProgress, signal);
}

// ------------------------------------------------------------ one request

async function whole(
  api: Api,
  file: Blob,
  meta: UploadMeta,
  onProgress: (p: UploadProgress) => void,
  signal: AbortSignal,
): Promise<FileView> {
  const query: Record<string, string> = { name: meta.name, kind: meta.kind };
  if (meta.durationMs !== undefined) query.duration_ms = String(Math.round(meta.durationMs));
  const r = await onAnyNode(api, signal, (node) =>
    request(api, node, 'POST', '/v1/files', {
      query,
      raw: file,
      signal,
      onSent: (loaded) => onProgress({ loaded, total: file.size, chunks: null }),
    }),
  );
  return fileOf(r);
}

// -------------------------------------------------------------- resumable

async function resumable(
  api: Api,
  file: Blob,
  meta: UploadMeta,
  onProgress: (p: UploadProgress) => void,
  signal: AbortSignal,
): Promise<FileView> {
  const size = file.size;
  const declared = {
    name: meta.name,
    size,
    kind: meta.kind,
    ...(meta.durationMs !== undefined ? { duration_ms: Math.round(meta.durationMs) } : {}),
  };
  let node = '';
  const start = async (): Promise<Session> => {
    const s = (await onAnyNode(api, signal, (n) => {
      node = n;
      return request(api, n, 'POST', '/v1/uploads', { json: declared, signal });
    })) as Session;
    if (!s || typeof s.upload_id !== 'string' || !(s.chunk_size > 0)) {
      throw new ApiError(500, 'bad_answer', 'the server did not describe the upload');
    }
    return s;
  };
  let s = await start();
  const path = () => `/v1/uploads/${encodeURIComponent(s.upload_id)}`;
  let have = new Set<number>();
  const report = (inFlight: number) =>
    onProgress({
      loaded: Math.min(size, receivedBytes(size, s.chunk_size, [...have]) + inFlight),
      total: size,
      chunks: { done: have.size, count: s.chunks },
    });
  report(0);
  let failures = 0;
  let nodeFailures = 0;
  let restarts = 0;
  try {
    for (;;) {
      const todo = missingChunks(s.chunks, [...have]);
      if (!todo.length) break;
      try {
        for (const i of todo) {
          const r = chunkRange(size, s.chunk_size, i);
          await request(api, node, 'PUT', `${path()}/chunks/${i}`, { raw: file.slice(r.start, r.end), signal, onSent: report });
          have.add(i);
          failures = 0;
          nodeFailures = 0;
          report(0);
        }
      } catch (e) {
        if (e instanceof Cancelled || !(worthRetrying(e) || isGone(e))) throw e;
        if (++failures > CHUNK_FAILURES) throw e;
        if (e instanceof NetworkError) nodeFailures++;
        let gone = isGone(e) || nodeFailures >= NODE_FAILURES;
        if (!gone) {
          await sleep(Math.min(5000, 400 * failures), signal);
          // Ask the session's node what it has, and go on from there.
          try {
            const st = (await request(api, node, 'GET', path(), { signal })) as Session;
            have = new Set(st.received ?? []);
          } catch (e2) {
            if (e2 instanceof Cancelled || !(worthRetrying(e2) || isGone(e2))) throw e2;
            if (e2 instanceof NetworkError) nodeFailures++;
            gone = isGone(e2) || nodeFailures >= NODE_FAILURES;
          }
        }
        if (gone) {
          // The session went with its node: begin again on another one.
          if (++restarts > SESSION_RESTARTS) throw e;
          api.pool.failover(node);
          s = await start();
          have = new Set();
          nodeFailures = 0;
        }
        report(0);
      }
    }
    return fileOf(await onSameNode(signal, () => request(api, node, 'POST', `${path()}/finish`, { signal })));
  } catch (e) {
    // Give the server its space back (best effort; it also expires sessions).
    request(api, node, 'DELETE', path(), {}).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------- helpers

/** A request to the current node, moving on to the next one while that may help. */
async function onAnyNode(api: Api, signal: AbortSignal, fn: (node: string) => Promise<unknown>): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const node = api.pool.current;
    try {
      return await fn(node);
    } catch (e) {
      if (e instanceof Cancelled || !worthRetrying(e) || attempt >= ATTEMPTS) throw e;
      api.pool.failover(node);
      await sleep(300 * attempt, signal);
    }
  }
}

/** A request that only the session's node can answer, tried a few times. */
async function onSameNode(signal: AbortSignal, fn: () => Promise<unknown>): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof Cancelled || !worthRetrying(e) || attempt >= ATTEMPTS) throw e;
      await sleep(500 * attempt, signal);
    }
  }
}

interface RequestOptions {
  query?: Record<string, string>;
  json?: unknown;
  raw?: Blob;
  signal?: AbortSignal;
  /** Bytes of the body sent so far. */
  onSent?: (loaded: number) => void;
}

/**
 * One authenticated request through XMLHttpRequest, with the token
 * refreshed first when it is about to expire, and once more after
 * `token_expired`. Answers the parsed JSON (null for 204).
 */
async function request(api: Api, node: string, method: string, path: string, opts: RequestOptions): Promise<unknown> {
  await api.ensureFresh();
  try {
    return await xhr(api, node, method, path, opts);
  } catch (e) {
    if (!(e instanceof ApiError && e.code === 'token_expired')) throw e;
    await api.refresh(true);
    return xhr(api, node, method, path, opts);
  }
}

function xhr(api: Api, node: string, method: string, path: string, opts: RequestOptions): Promise<unknown> {
  const url = new URL(path, node);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  const signal = opts.signal;
  return new Promise<unknown>((resolve, reject) => {
    if (signal?.aborted) return reject(new Cancelled());
    const x = new XMLHttpRequest();
    let stall: ReturnType<typeof setTimeout> | null = null;
    const alive = () => {
      if (stall) clearTimeout(stall);
      stall = setTimeout(() => x.abort(), STALL_MS);
    };
    const cancel = () => x.abort();
    const settle = () => {
      if (stall) clearTimeout(stall);
      signal?.removeEventListener('abort', cancel);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    x.open(method, url.toString());
    x.setRequestHeader('Accept', 'application/json');
    if (opts.raw) x.setRequestHeader('Content-Type', 'application/octet-stream');
    if (opts.json !== undefined) x.setRequestHeader('Content-Type', 'application/json');
    const token = api.accessToken;
    if (token) x.setRequestHeader('Authorization', `Bearer ${token}`);
    if (opts.onSent) {
      const onSent = opts.onSent;
      x.upload.onprogress = (ev) => {
        alive();
        onSent(ev.loaded);
      };
    }
    x.onload = () => {
      settle();
      let data: unknown = null;
      try {
        data = x.responseText ? JSON.parse(x.responseText) : null;
      } catch {
        data = null;
      }
      if (x.status >= 200 && x.status < 300) return resolve(data);
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      reject(new ApiError(x.status, err?.code ?? `http_${x.status}`, err?.message ?? x.statusText));
    };
    x.onerror = x.onabort = x.ontimeout = () => {
      settle();
      reject(signal?.aborted ? new Cancelled() : new NetworkError(node, 'the upload was interrupted'));
    };
    alive();
    x.send(opts.raw ?? (opts.json === undefined ? null : JSON.stringify(opts.json)));
  });
}

function fileOf(r: unknown): FileView {
  const f = (r as { file?: FileView } | null)?.file;
  if (!f || typeof f.id !== 'string') throw new ApiError(500, 'bad_answer', 'the server did not describe the file');
  return f;
}

/**
 * Try again later: no answer, or the cluster is busy or electing. Not a
 * full disk (507), a quota or a refused type: those are the answer.
 */
function worthRetrying(e: unknown): boolean {
  if (e instanceof NetworkError) return true;
  return e instanceof ApiError && (LEAVE_NODE.has(e.code) || [429, 502, 503, 504].includes(e.status));
}

/** The node no longer knows the upload session. */
function isGone(e: unknown): boolean {
  return e instanceof ApiError && e.status === 404;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new Cancelled());
    const stop = () => {
      clearTimeout(t);
      reject(new Cancelled());
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      resolve();
    }, ms);
    signal.addEventListener('abort', stop, { once: true });
  });
