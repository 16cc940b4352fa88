// A tiny hash router: #/chats, #/chat/<id>, #/direct/<userid>,
// #/contacts, #/user/<userid>, #/notices, #/notices/<id>, #/notices/new,
// #/announcements, #/announcements/<id>, #/announcements/new,
// #/approvals, #/approvals/<id>, #/approvals/new[/<template>],
// #/external, #/external/group/<conv>, #/accept/<code> (no login).

export type Route =
  | { name: 'chats' }
  | { name: 'chat'; id: string }
  | { name: 'direct'; userid: string }
  | { name: 'contacts' }
  | { name: 'user'; userid: string }
  | { name: 'notices' }
  | { name: 'notice'; id: number }
  | { name: 'notice-new' }
  | { name: 'announcements' }
  | { name: 'announcement'; id: number }
  | { name: 'announcement-new' }
  | { name: 'approvals' }
  | { name: 'approval'; id: number }
  | { name: 'approval-new'; template?: string }
  | { name: 'external' }
  | { name: 'external-group'; id: string }
  | { name: 'accept'; code: string };

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
    case 'announcements':
      if (parts[1] === 'new') return { name: 'announcement-new' };
      return parts[1] && /^\d+$/.test(parts[1]) ? { name: 'announcement', id: Number(parts[1]) } : { name: 'announcements' };
    case 'approvals':
      if (parts[1] === 'new') return parts[2] ? { name: 'approval-new', template: parts[2] } : { name: 'approval-new' };
      return parts[1] && /^\d+$/.test(parts[1]) ? { name: 'approval', id: Number(parts[1]) } : { name: 'approvals' };
    case 'external':
      return parts[1] === 'group' && parts[2] ? { name: 'external-group', id: parts[2] } : { name: 'external' };
    case 'accept':
      return { name: 'accept', code: parts[1] ?? '' };
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
    case 'announcements':
      return '#/announcements';
    case 'announcement':
      return `#/announcements/${r.id}`;
    case 'announcement-new':
      return '#/announcements/new';
    case 'approvals':
      return '#/approvals';
    case 'approval':
      return `#/approvals/${r.id}`;
    case 'approval-new':
      return r.template ? `#/approvals/new/${encodeURIComponent(r.template)}` : '#/approvals/new';
    case 'external':
      return '#/external';
    case 'external-group':
      return `#/external/group/${encodeURIComponent(r.id)}`;
    case 'accept':
      return `#/accept/${encodeURIComponent(r.code)}`;
  }
}

export function go(r: Route, replace = false): void {
  const h = href(r);
  if (replace) history.replaceState(null, '', h);
  else location.hash = h;
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}
