// A tiny hash router: #/chats, #/chat/<id>, #/direct/<userid>,
// #/contacts, #/user/<userid>, #/notices, #/notices/<id>, #/notices/new.

export type Route =
  | { name: 'chats' }
  | { name: 'chat'; id: string }
  | { name: 'direct'; userid: string }
  | { name: 'contacts' }
  | { name: 'user'; userid: string }
  | { name: 'notices' }
  | { name: 'notice'; id: number }
  | { name: 'notice-new' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  switch (parts[0]) {
    case 'chat':
      return parts[1] ? { name: 'chat', id: parts[1] } : { name: 'chats' };
    case 'direct':
      return parts[1] ? { name: 'direct', userid: parts[1] } : { name: 'chats' };
    case 'contacts':
      return { name: 'contacts' };
    case 'user':
      return parts[1] ? { name: 'user', userid: parts[1] } : { name: 'contacts' };
    case 'notices':
      if (parts[1] === 'new') return { name: 'notice-new' };
      return parts[1] && /^\d+$/.test(parts[1]) ? { name: 'notice', id: Number(parts[1]) } : { name: 'notices' };
    default:
      return { name: 'chats' };
  }
}

export function href(r: Route): string {
  switch (r.name) {
    case 'chats':
      return '#/chats';
    case 'chat':
      return `#/chat/${encodeURIComponent(r.id)}`;
    case 'direct':
      return `#/direct/${encodeURIComponent(r.userid)}`;
    case 'contacts':
      return '#/contacts';
    case 'user':
      return `#/user/${encodeURIComponent(r.userid)}`;
    case 'notices':
      return '#/notices';
    case 'notice':
      return `#/notices/${r.id}`;
    case 'notice-new':
      return '#/notices/new';
  }
}

export function go(r: Route, replace = false): void {
  const h = href(r);
  if (replace) history.replaceState(null, '', h);
  else location.hash = h;
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}
