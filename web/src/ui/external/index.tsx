// The external-contact views: one chunk (and stylesheet) loaded on demand
// by ../lazy.ts — the employee's contacts and customer groups, inviting,
// the auto-replies editor, an external account's "My contacts" and the
// hand-overs it may object to, and the invitation's acceptance page.
import './external.css';
import { xt } from './strings.ts';

export { AcceptPage } from './Accept.tsx';
export { ExternalList, InviteDialog, MyContacts } from './Contacts.tsx';
export { AutoReplies, CustomerGroupPage } from './Group.tsx';
export { HandoverBanner, HandoverList } from './Handover.tsx';
export { Handovers } from '../../handovers.ts';

/** The content pane when nothing is selected. */
export function emptyText(): string {
  return xt('selectHint');
}
