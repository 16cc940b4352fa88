// The announcement and approval views: one chunk (and stylesheet) loaded
// on demand by ../lazy.ts.
import './office.css';
import { ot } from './strings.ts';

export { AnnouncementCompose, AnnouncementList, AnnouncementPage } from './Announcements.tsx';
export { ApprovalList, ApprovalNew, ApprovalPage } from './Approvals.tsx';

/** The content pane when nothing is selected. */
export function emptyText(section: 'announcements' | 'approvals'): string {
  return section === 'announcements' ? ot('selectAnnouncement') : ot('selectRequest');
}
