import { useState } from 'preact/hooks';
import { shortTime, t } from '../i18n.ts';
import { href, type Route } from '../router.ts';
import { isGroupConv, systemSender, type ConvState, type Store } from '../state.ts';
import { Avatar } from './Avatar.tsx';
import { fileLabel } from './Attachment.tsx';
import { GroupCreate } from './GroupCreate.tsx';
import { ExternalBadge } from './ExternalBadge.tsx';
import { useStore } from './hooks.ts';

function preview(store: Store, cs: ConvState): string {
  const m = cs.lastMessage;
  if (!m) return '';
  if (m.recalled) return t('recalledPreview');
  const who =
    (isGroupConv(cs.conv) && m.sender !== store.api.userid) || systemSender(m.sender) ? `${store.name(m.sender)}: ` : '';
  const text = m.text.replace(/\s+/g, ' ');
  return who + (m.file ? `${fileLabel(m.file)}${text ? ` ${text}` : ''}` : text);
}

export function ConversationList({ route }: { route: Route }) {
  const store = useStore();
  const [creating, setCreating] = useState(false);
  const list = store.sortedConversations();
  const me = store.api.userid ?? '';
  return (
    <div class="pane">
      <div class="pane-head">
        <h2 class="pane-title">{t('chats')}</h2>
        {/* External accounts may not create internal groups (nor pick members from the directory). */}
        {!store.external && (
          <button type="button" class="primary small" onClick={() => setCreating(true)} data-testid="new-group">
            {t('newGroup')}
          </button>
        )}
      </div>
      {list.length === 0 ? (
        <p class="empty">{t('noConversations')}</p>
      ) : (
        <ul class="conv-list" data-testid="conversation-list" aria-label={t('conversations')}>
          {list.map((cs) => {
            const unread = store.unread(cs);
            const title = store.convTitle(cs);
            const active = route.name === 'chat' && route.id === cs.conv.id;
            const m = cs.lastMessage;
            const mentioned =
              unread > 0 && m && !m.recalled && m.sender !== me && (m.mentions.includes(me) || m.mention_all);
            const pending = store.pending(cs.conv.id).some((o) => o.state === 'failed');
            return (
              <li key={cs.conv.id}>
                <a
                  href={href({ name: 'chat', id: cs.conv.id })}
                  class={active ? 'conv-item active' : 'conv-item'}
                  aria-current={active ? 'true' : undefined}
                  data-testid="conversation"
                  data-conv={cs.conv.id}
                  data-title={title}
                  data-unread={unread}
                  data-external={cs.conv.external ? 'true' : undefined}
                >
                  <Avatar name={title} group={isGroupConv(cs.conv)} />
                  <span class="conv-main">
                    <span class="conv-top">
                      <span class="conv-title tagged">
                        <span class="conv-name">{title}</span>
                        {isGroupConv(cs.conv) && (
                          <span class="tag">
                            {cs.conv.kind === 'customer' ? t('customerGroupTag') : t('groupTag')} ·{' '}
                            {t('memberCount', { n: cs.conv.member_count })}
                          </span>
                        )}
                        <ExternalBadge store={store} cs={cs} />
                      </span>
                      <time class="conv-time" dateTime={m ? new Date(m.time_ms).toISOString() : undefined}>
                        {shortTime(m?.time_ms ?? cs.conv.created_at_ms)}
                      </time>
                    </span>
                    <span class="conv-bottom">
                      <span class="conv-preview" data-testid="conversation-preview">
                        {pending && <span class="warn">[{t('sendFailed')}] </span>}
                        {mentioned && <span class="warn">{t('mentionYou')} </span>}
                        {preview(store, cs)}
                      </span>
                      {unread > 0 && (
                        <span class="badge" data-testid="unread-badge">
                          <span class="sr-only">{t('unreadCount', { n: unread })}</span>
                          <span aria-hidden="true">{unread > 99 ? '99+' : unread}</span>
                        </span>
                      )}
                    </span>
                  </span>
                </a>
              </li>
            );
          })}
        </ul>
      )}
      {creating && !store.external && <GroupCreate onClose={() => setCreating(false)} />}
    </div>
  );
}
