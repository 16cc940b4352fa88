import { useEffect, useState } from 'preact/hooks';
import { t } from '../i18n.ts';
import { go, href } from '../router.ts';
import { Login, ChangePassword } from './Login.tsx';
import { ConversationList } from './ConversationList.tsx';
import { Chat } from './Chat.tsx';
import { Directory } from './Directory.tsx';
import { Profile } from './Profile.tsx';
import { LangSwitch } from './LangSwitch.tsx';
import { Dialog } from './Dialog.tsx';
import { AnnouncementIcon, ApprovalIcon, ChatIcon, ContactsIcon, ExternalIcon, NoticeIcon } from './Icons.tsx';
import { NoticeCompose, NoticeList, NoticePage, UrgentDialog } from './Notices.tsx';
import { useLang, useNarrow, useRoute, useStore } from './hooks.ts';
import { prefetchExternal, prefetchFiles, prefetchOffice, useExternal, useOffice } from './lazy.ts';
import { Attachments } from '../attachments.ts';
import type { Route } from '../router.ts';

type Section = 'chats' | 'contacts' | 'notices' | 'announcements' | 'approvals' | 'external';

function sectionOf(r: Route): Section {
  switch (r.name) {
    case 'contacts':
    case 'user':
      return 'contacts';
    case 'notices':
    case 'notice':
    case 'notice-new':
      return 'notices';
    case 'announcements':
    case 'announcement':
    case 'announcement-new':
      return 'announcements';
    case 'approvals':
    case 'approval':
    case 'approval-new':
      return 'approvals';
    case 'external':
    case 'external-group':
      return 'external';
    default:
      return 'chats';
  }
}

const DETAIL = new Set<Route['name']>([
  'chat',
  'direct',
  'user',
  'notice',
  'notice-new',
  'announcement',
  'announcement-new',
  'approval',
  'approval-new',
  'external-group',
]);

/** What an external account's session does not have: the organization's notices, announcements, approvals, directory and external-contact management. */
const NOT_FOR_EXTERNAL = new Set<Route['name']>([
  'user',
  'direct',
  'notices',
  'notice',
  'notice-new',
  'announcements',
  'announcement',
  'announcement-new',
  'approvals',
  'approval',
  'approval-new',
  'external',
  'external-group',
]);

export function App() {
  useLang();
  const store = useStore();
  const asked = useRoute();
  // What an external account may not open is not rendered at all (it would ask the directory): the chats instead.
  const route: Route = store.external && NOT_FOR_EXTERNAL.has(asked.name) ? { name: 'chats' } : asked;
  const narrow = useNarrow();
  const [pwOpen, setPwOpen] = useState(false);
  const section = sectionOf(route);
  const office = useOffice(store.phase === 'ready' && (section === 'announcements' || section === 'approvals'));
  const ready = store.phase === 'ready';
  const accepting = route.name === 'accept';
  const external = useExternal(accepting || (ready && (section === 'external' || (store.external && section === 'contacts'))));
  useEffect(() => {
    if (ready) {
      if (!store.external) prefetchOffice();
      prefetchFiles();
      prefetchExternal();
      Attachments.prefetch();
    }
  }, [ready, store]);

  // An external account has no directory, notices, announcements or approvals.
  useEffect(() => {
    if (ready && store.external && NOT_FOR_EXTERNAL.has(asked.name)) go({ name: 'chats' }, true);
  });

  // The conversation on screen is the one marked read.
  const openId = store.phase === 'ready' && route.name === 'chat' ? route.id : null;
  useEffect(() => {
    store.open(openId);
  }, [openId, store]);

  // A draft 1:1 chat becomes the real conversation once it exists.
  useEffect(() => {
    if (route.name === 'direct' && store.phase === 'ready') {
      const cs = store.directWith(route.userid);
      if (cs) go({ name: 'chat', id: cs.conv.id }, true);
    }
  });

  const XV = external.views;
  const chunkState = (
    <div class="empty-main">
      {external.failed ? (
        <p role="alert">
          {t('loadFailed')}{' '}
          <button type="button" class="link-btn" onClick={external.retry}>
            {t('retry')}
          </button>
        </p>
      ) : (
        <p role="status">{t('loading')}</p>
      )}
    </div>
  );
  // The acceptance page of an invitation needs no login.
  if (accepting) {
    return XV ? (
      <XV.AcceptPage key={route.code} code={route.code} />
    ) : (
      <div class="auth-page">
        <main class="auth-card" id="main">
          <h1 class="brand">{t('appName')}</h1>
          {chunkState}
        </main>
      </div>
    );
  }
  if (store.phase === 'login') return <Login store={store} />;
  if (store.phase === 'password') return <ChangePassword store={store} forced />;
  if (store.phase === 'loading' || !store.me) {
    return (
      <div class="auth-page">
        <main class="auth-card" id="main" aria-busy="true">
          <h1 class="brand">{t('appName')}</h1>
          <p role="status">{t('loading')}</p>
        </main>
      </div>
    );
  }

  const detail = DETAIL.has(route.name);
  const V = office.views;
  const viewLoading = office.failed ? (
    <div class="empty-main">
      <p role="alert">
        {t('loadFailed')}{' '}
        <button type="button" class="link-btn" onClick={office.retry}>
          {t('retry')}
        </button>
      </p>
    </div>
  ) : (
    <div class="empty-main">
      <p role="status">{t('loading')}</p>
    </div>
  );
  const status = store.streamStatus;
  const node = store.streamNode ? store.pool.label(store.streamNode) : '';
  const statusText =
    status === 'live'
      ? t('connLive', { node })
      : status === 'syncing'
        ? t('connSyncing', { node })
        : status === 'connecting'
          ? t('connConnecting', { node })
          : t('connOffline');

  return (
    <div class={`shell ${narrow ? (detail ? 'narrow show-detail' : 'narrow show-list') : 'wide'}`}>
      <header class="topbar">
        <h1 class="brand-small">{t('appName')}</h1>
        <span class={`conn conn-${status}`} role="status" data-testid="conn-status" data-state={status} data-node={node}>
          <span class="dot" aria-hidden="true" />
          <span class="conn-text">{statusText}</span>
        </span>
        <span class="spacer" />
        <LangSwitch />
        <button type="button" class="link-btn" onClick={() => setPwOpen(true)} data-testid="open-password">
          {t('changePasswordTitle')}
        </button>
        <span class="whoami" data-testid="whoami">
          {store.me.name}
        </span>
        <button type="button" class="link-btn" onClick={() => store.logout()} data-testid="logout">
          {t('logout')}
        </button>
      </header>
      <nav class="rail" aria-label={t('mainNav')}>
        <a href={href({ name: 'chats' })} aria-current={section === 'chats' ? 'page' : undefined} data-testid="nav-chats">
          <ChatIcon />
          <span>{t('chats')}</span>
          <TotalUnread />
        </a>
        <a
          href={href({ name: 'contacts' })}
          aria-current={section === 'contacts' ? 'page' : undefined}
          data-testid="nav-contacts"
        >
          <ContactsIcon />
          <span>{store.external ? t('myContacts') : t('contacts')}</span>
        </a>
        {!store.external && (
          <>
            <a
              href={href({ name: 'external' })}
              aria-current={section === 'external' ? 'page' : undefined}
              data-testid="nav-external"
            >
              <ExternalIcon />
              <span>{t('externalNav')}</span>
            </a>
            <a href={href({ name: 'notices' })} aria-current={section === 'notices' ? 'page' : undefined} data-testid="nav-notices">
              <NoticeIcon />
              <span>{t('notices')}</span>
              <UnackedBadge />
            </a>
            <a
              href={href({ name: 'announcements' })}
              aria-current={section === 'announcements' ? 'page' : undefined}
              data-testid="nav-announcements"
            >
              <AnnouncementIcon />
              <span>{t('announcements')}</span>
              <CountBadge n={store.office.unreadAnnouncements()} label="unreadAnnouncements" testid="unread-announcements" />
            </a>
            <a
              href={href({ name: 'approvals' })}
              aria-current={section === 'approvals' ? 'page' : undefined}
              data-testid="nav-approvals"
            >
              <ApprovalIcon />
              <span>{t('approvals')}</span>
              <CountBadge
                n={store.office.waitingCount()}
                more={store.office.waitingMore()}
                label="waitingApprovals"
                testid="waiting-approvals"
              />
            </a>
          </>
        )}
      </nav>
      <main class="main-wrap" id="main">
      <section
        class="sidebar"
        aria-label={
          section === 'chats'
            ? t('conversations')
            : section === 'notices'
              ? t('urgentNotice')
              : section === 'announcements'
                ? t('announcements')
                : section === 'approvals'
                  ? t('approvals')
                  : section === 'external'
                    ? t('externalContacts')
                    : store.external
                      ? t('myContacts')
                      : t('directory')
        }
      >
        {section === 'chats' ? (
          <ConversationList route={route} />
        ) : section === 'notices' ? (
          <NoticeList selected={route.name === 'notice' ? route.id : null} />
        ) : section === 'announcements' ? (
          V ? (
            <V.AnnouncementList selected={route.name === 'announcement' ? route.id : null} />
          ) : (
            viewLoading
          )
        ) : section === 'approvals' ? (
          V ? (
            <V.ApprovalList selected={route.name === 'approval' ? route.id : null} />
          ) : (
            viewLoading
          )
        ) : section === 'external' || store.external ? (
          XV ? (
            section === 'external' ? (
              <XV.ExternalList route={route} />
            ) : (
              <XV.MyContacts />
            )
          ) : (
            chunkState
          )
        ) : (
          <Directory route={route} />
        )}
      </section>
      <div class="content">
        {route.name === 'chat' ? (
          <Chat key={route.id} convId={route.id} />
        ) : route.name === 'direct' ? (
          <Chat key={`direct:${route.userid}`} convId={null} direct={route.userid} />
        ) : route.name === 'user' ? (
          <Profile key={route.userid} userid={route.userid} />
        ) : route.name === 'notice' ? (
          <NoticePage key={route.id} id={route.id} />
        ) : route.name === 'notice-new' ? (
          <NoticeCompose />
        ) : section === 'external' ? (
          !XV ? (
            chunkState
          ) : route.name === 'external-group' ? (
            <XV.CustomerGroupPage key={route.id} id={route.id} />
          ) : (
            <div class="empty-main">
              <p>{XV.emptyText()}</p>
            </div>
          )
        ) : section === 'announcements' || section === 'approvals' ? (
          !V ? (
            viewLoading
          ) : route.name === 'announcement' ? (
            <V.AnnouncementPage key={route.id} id={route.id} />
          ) : route.name === 'announcement-new' ? (
            <V.AnnouncementCompose />
          ) : route.name === 'approval' ? (
            <V.ApprovalPage key={route.id} id={route.id} />
          ) : route.name === 'approval-new' ? (
            <V.ApprovalNew key={route.template ?? ''} template={route.template ?? null} />
          ) : (
            <div class="empty-main">
              <p>{V.emptyText(section)}</p>
            </div>
          )
        ) : (
          <div class="empty-main">
            <p>{t('selectConversation')}</p>
          </div>
        )}
      </div>
      </main>
      <UrgentDialog />
      {pwOpen && (
        <Dialog title={t('changePasswordTitle')} onClose={() => setPwOpen(false)}>
          <ChangePassword store={store} forced={false} />
        </Dialog>
      )}
    </div>
  );
}

function UnackedBadge() {
  const store = useStore();
  const n = store.urgent.unacked().length;
  if (!n) return null;
  return (
    <span class="badge" data-testid="unacked-notices">
      <span class="sr-only">{t('unackedCount', { n })}</span>
      <span aria-hidden="true">{n > 99 ? '99+' : n}</span>
    </span>
  );
}

function CountBadge({ n, more, label, testid }: { n: number; more?: boolean; label: 'unreadAnnouncements' | 'waitingApprovals'; testid: string }) {
  if (!n) return null;
  const shown = n > 99 || more ? '99+' : String(n);
  return (
    <span class="badge" data-testid={testid} data-count={n}>
      <span class="sr-only">{t(label, { n: more ? `${n}+` : n })}</span>
      <span aria-hidden="true">{shown}</span>
    </span>
  );
}

function TotalUnread() {
  const store = useStore();
  let n = 0;
  for (const cs of store.conversations.values()) n += store.unread(cs);
  if (!n) return null;
  return (
    <span class="badge" data-testid="total-unread">
      <span class="sr-only">{t('unreadCount', { n })}</span>
      <span aria-hidden="true">{n > 99 ? '99+' : n}</span>
    </span>
  );
}
