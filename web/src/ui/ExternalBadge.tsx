import { t } from '../i18n.ts';
import type { ConvState, Store } from '../state.ts';

/**
 * The mark of a conversation with people from outside the organization
 * (a contact's 1:1 or a customer group): "外部" / "External", with the
 * contact's organization where it is known.
 */
export function ExternalBadge({ store, cs }: { store: Store; cs: ConvState }) {
  if (!cs.conv.external) return null;
  const org = cs.conv.kind === 'contact' && cs.peer ? store.orgOf(cs.peer) : null;
  return (
    <span class="tag ext" data-testid="external-badge" data-org={org ?? ''} title={t('externalConv')}>
      {org ? t('externalOrg', { org }) : t('externalTag')}
    </span>
  );
}
