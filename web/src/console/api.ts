// Calls to the admin port from the console. The page is served by the
// admin port itself, so every call is same-origin and the browser presents
// the operator's client certificate on the TLS connection: there is no
// token, no cookie and nothing to steal from the page. The server checks
// the certificate's role on every route; the console only hides what the
// role may not do.

export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

export type Role = 'sysadmin' | 'secadmin' | 'auditor' | 'monitor';

export interface Status {
  node_id: string;
  version: string;
  uptime_secs: number;
  role: string;
  ca_fingerprint: string;
  certificate: { serial: string; not_after: string };
  listen: { peer: string; api: string; admin: string };
  caller: { name: string; role: Role };
}

export async function call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new AdminError(0, 'network', e instanceof Error ? e.message : String(e));
  }
  const text = await resp.text();
  const v = parse(text);
  if (!resp.ok) throw refusal(resp, text, v);
  return v as T;
}

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null; // not JSON
  }
}

function refusal(resp: Response, text: string, v: unknown): AdminError {
  const err = (v as { error?: { code?: string; message?: string } } | null)?.error;
  return new AdminError(resp.status, err?.code ?? `http_${resp.status}`, err?.message ?? (text.slice(0, 200) || resp.statusText));
}

/** A file the server sends (a CSV export) and its name from Content-Disposition. */
export async function fetchFile(path: string, fallbackName: string): Promise<{ blob: Blob; name: string }> {
  let resp: Response;
  try {
    resp = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new AdminError(0, 'network', e instanceof Error ? e.message : String(e));
  }
  if (!resp.ok) {
    const text = await resp.text();
    throw refusal(resp, text, parse(text));
  }
  const m = /filename="([^"/\\]+)"/.exec(resp.headers.get('content-disposition') ?? '');
  return { blob: await resp.blob(), name: m ? m[1] : fallbackName };
}

export const get = <T = unknown>(path: string) => call<T>('GET', path);

/** Query string from the defined entries of `q`. */
export function query(q: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}
