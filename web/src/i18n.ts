// UI strings: Chinese by default, English switchable. The Chinese table
// defines the keys; the English one must have every key (checked by tsc).
// `{name}` placeholders are filled by `t(key, {name: …})`.

const zh = {
  appName: 'Enclave',
  language: '语言',
  langZh: '中文',
  langEn: 'English',
  // login
  loginTitle: '登录',
  userid: '账号',
  password: '密码',
  login: '登录',
  loggingIn: '正在登录…',
  logout: '退出登录',
  loginFailed: '账号或密码错误',
  sessionEnded: '登录已失效，请重新登录',
  accountLocked: '登录失败次数过多，账号已被锁定，请稍后再试或联系管理员',
  tooManyAttempts: '尝试次数过多，请稍后再试',
  accountInactive: '账号已停用',
  networkError: '无法连接服务器，请检查网络',
  // password change
  changePasswordTitle: '修改密码',
  mustChangePassword: '首次登录或管理员重置了密码，请先设置新密码。',
  oldPassword: '当前密码',
  newPassword: '新密码',
  confirmPassword: '确认新密码',
  passwordRule: '8–256 个字符',
  passwordMismatch: '两次输入的新密码不一致',
  weakPassword: '密码需为 8–256 个字符',
  wrongPassword: '当前密码不正确',
  save: '保存',
  saving: '正在保存…',
  passwordChanged: '密码已修改',
  // navigation
  mainNav: '主导航',
  chats: '消息',
  contacts: '通讯录',
  me: '我',
  back: '返回',
  // connection
  connLive: '已连接 {node}',
  connConnecting: '正在连接 {node}…',
  connSyncing: '正在同步 {node}…',
  connOffline: '连接中断，正在重连…',
  // conversation list
  conversations: '会话列表',
  noConversations: '还没有会话。去通讯录找同事发起聊天吧。',
  unreadCount: '{n} 条未读',
  newGroup: '发起群聊',
  groupTag: '群',
  draft: '[草稿]',
  recalledPreview: '[消息已撤回]',
  loading: '正在加载…',
  loadFailed: '加载失败',
  retry: '重试',
  // chat
  chatWith: '与 {name} 的会话',
  messages: '消息记录',
  messageInput: '输入消息',
  messagePlaceholder: '输入消息，Enter 发送，Shift+Enter 换行，@ 提及成员',
  send: '发送',
  sending: '发送中',
  sendFailed: '发送失败',
  resend: '重新发送',
  discard: '删除',
  reply: '回复',
  replyTo: '回复 {name}：',
  cancelReply: '取消回复',
  recall: '撤回',
  recalled: '{name} 撤回了一条消息',
  youRecalled: '你撤回了一条消息',
  recallFailed: '撤回失败：{msg}',
  recallExpired: '已超过可撤回时间',
  read: '已读',
  unread: '未读',
  allRead: '全部已读',
  nUnread: '{n} 人未读',
  receipts: '消息接收情况',
  readBy: '已读 ({n})',
  unreadBy: '未读 ({n})',
  loadOlder: '加载更早的消息',
  loadingOlder: '正在加载更早的消息…',
  beginning: '没有更早的消息了',
  jumpToLatest: '回到最新消息',
  newMessages: '有新消息',
  mentionYou: '[有人@我]',
  mentionAll: '所有人',
  mentionPicker: '选择要提及的成员',
  announcement: '群公告',
  quoted: '引用的消息',
  notLoaded: '（消息未加载）',
  selectConversation: '选择一个会话开始聊天',
  dissolved: '该群已解散',
  groupInfo: '群设置',
  members: '成员',
  memberCount: '{n} 人',
  you: '我',
  justNow: '刚刚',
  yesterday: '昨天',
  pending: '等待发送',
  // groups
  createGroup: '发起群聊',
  groupName: '群名称',
  groupNameRequired: '请输入群名称',
  pickMembers: '选择成员',
  selected: '已选择 ({n})',
  noneSelected: '未选择成员',
  create: '创建',
  creating: '正在创建…',
  cancel: '取消',
  close: '关闭',
  rename: '修改群名称',
  editAnnouncement: '编辑群公告',
  addMembers: '添加成员',
  add: '添加',
  remove: '移出',
  removeMember: '将 {name} 移出群聊',
  leaveGroup: '退出群聊',
  dissolveGroup: '解散群聊',
  confirmLeave: '确定退出该群聊？',
  confirmDissolve: '确定解散该群聊？解散后所有成员都无法再发言。',
  makeAdmin: '设为管理员',
  unmakeAdmin: '取消管理员',
  makeOwner: '转让群主',
  owner: '群主',
  admin: '管理员',
  ok: '确定',
  saved: '已保存',
  actionFailed: '操作失败：{msg}',
  // directory
  directory: '通讯录',
  departments: '部门',
  searchDirectory: '搜索同事（姓名、拼音或首字母）',
  search: '搜索',
  noResults: '没有找到匹配的成员',
  expand: '展开 {name}',
  collapse: '收起 {name}',
  membersOf: '{name} 的成员',
  profile: '个人资料',
  title: '职务',
  email: '邮箱',
  mobile: '手机',
  department: '部门',
  status: '状态',
  statusActive: '在职',
  statusDisabled: '已停用',
  statusDeparted: '已离职',
  sendMessage: '发消息',
  loadMore: '加载更多',
  // misc
  skipToContent: '跳到主要内容',
  error: '出错了：{msg}',
  moreActions: '更多操作',
  details: '详情',
  notices: '通知',
  urgentNotice: '紧急通知',
  received: '收到的',
  sentByMe: '我发出的',
  noNotices: '还没有紧急通知',
  newNotice: '发布紧急通知',
  ack: '确认收到',
  acked: '已确认',
  notAcked: '未确认',
  later: '稍后处理',
  withdrawnTag: '已撤回',
  deadline: '截止 {time}',
  fromSender: '{name} 发布',
  reminderN: '第 {n} 次提醒',
  noticeTitle: '标题',
  noticeBody: '内容',
  noticeTo: '发送给',
  everyone: '全体成员',
  noticeDepts: '部门（可多选，含下级部门）',
  noticeUsers: '成员',
  deadlineMinutes: '截止时间（分钟后）',
  remindMinutes: '提醒间隔（分钟）',
  maxRounds: '最多提醒次数',
  sendingNotice: '正在发送…',
  countRecipients: '接收人',
  countDelivered: '已送达',
  countRead: '已读',
  countAcked: '已确认',
  countReminded: '被提醒',
  countEscalated: '已上报负责人',
  phase_sending: '发送中',
  phase_waiting: '等待确认',
  phase_reminding: '提醒中',
  phase_escalating: '上报中',
  phase_withdrawing: '撤回中',
  phase_done: '已结束',
  showUnacked: '未确认名单',
  withdrawNotice: '撤回',
  confirmWithdraw: '撤回这条紧急通知？所有接收人都会看到已撤回，不再提醒。',
  escalatedToYou: '你负责的 {n} 人未在截止前确认',
  unackedCount: '{n} 条待确认',
  // attachments
  attach: '发送文件或图片',
  dropFiles: '松开以发送文件',
  recordVoice: '按住录制语音，或点击开始',
  recording: '正在录音',
  recordingHint: '松开发送，最长 60 秒',
  sendVoice: '发送语音',
  cancelRecording: '取消录音',
  voiceTooShort: '说话时间太短',
  micFailed: '无法使用麦克风：{msg}',
  uploading: '正在上传',
  uploadChunks: '已传 {done}/{count} 块',
  uploadFailed: '上传失败：{msg}',
  cancelUpload: '取消上传',
  imagePreview: '[图片]',
  filePreview: '[文件] {name}',
  voicePreview: '[语音] {time}',
  openImage: '查看原图：{name}',
  imageFailed: '图片加载失败',
  download: '下载',
  downloadName: '下载 {name}',
  downloadOriginal: '下载原图',
  downloading: '正在下载 {pct}',
  downloadFailed: '下载失败：{msg}',
  playVoice: '播放语音，{time}',
  voiceLabel: '语音',
  cannotPlay: '无法在此播放，请下载后收听',
  fileGone: '文件已撤回或已删除',
  fileForbidden: '无权查看该文件',
  // announcements and approvals (the rest of their strings load with their views)
  announcements: '公告',
  approvals: '审批',
  unreadAnnouncements: '{n} 条未读公告',
  waitingApprovals: '{n} 条待我审批',
  confidential: '保密消息，请勿转发',
} as const;

export type Key = keyof typeof zh;
type Dict = { readonly [K in Key]: string };

const en: Dict = {
  appName: 'Enclave',
  language: 'Language',
  langZh: '中文',
  langEn: 'English',
  loginTitle: 'Sign in',
  userid: 'User ID',
  password: 'Password',
  login: 'Sign in',
  loggingIn: 'Signing in…',
  logout: 'Sign out',
  loginFailed: 'Wrong user ID or password',
  sessionEnded: 'Your session ended. Please sign in again.',
  accountLocked: 'Too many failed sign-ins: the account is locked. Try later or ask an administrator.',
  tooManyAttempts: 'Too many attempts, try again later',
  accountInactive: 'This account is disabled',
  networkError: 'Cannot reach the server; check the network',
  changePasswordTitle: 'Change password',
  mustChangePassword: 'Your password was set by an administrator. Please choose a new one first.',
  oldPassword: 'Current password',
  newPassword: 'New password',
  confirmPassword: 'Confirm new password',
  passwordRule: '8–256 characters',
  passwordMismatch: 'The new passwords do not match',
  weakPassword: 'The password must have 8–256 characters',
  wrongPassword: 'The current password is wrong',
  save: 'Save',
  saving: 'Saving…',
  passwordChanged: 'Password changed',
  mainNav: 'Main navigation',
  chats: 'Chats',
  contacts: 'Contacts',
  me: 'Me',
  back: 'Back',
  connLive: 'Connected to {node}',
  connConnecting: 'Connecting to {node}…',
  connSyncing: 'Syncing with {node}…',
  connOffline: 'Connection lost, reconnecting…',
  conversations: 'Conversations',
  noConversations: 'No conversations yet. Find a colleague in Contacts to start one.',
  unreadCount: '{n} unread',
  newGroup: 'New group',
  groupTag: 'Group',
  draft: '[Draft]',
  recalledPreview: '[Message recalled]',
  loading: 'Loading…',
  loadFailed: 'Could not load',
  retry: 'Retry',
  chatWith: 'Conversation with {name}',
  messages: 'Messages',
  messageInput: 'Message',
  messagePlaceholder: 'Type a message. Enter sends, Shift+Enter for a new line, @ mentions',
  send: 'Send',
  sending: 'Sending',
  sendFailed: 'Not sent',
  resend: 'Send again',
  discard: 'Delete',
  reply: 'Reply',
  replyTo: 'Replying to {name}:',
  cancelReply: 'Cancel reply',
  recall: 'Recall',
  recalled: '{name} recalled a message',
  youRecalled: 'You recalled a message',
  recallFailed: 'Could not recall: {msg}',
  recallExpired: 'Too late to recall',
  read: 'Read',
  unread: 'Unread',
  allRead: 'All read',
  nUnread: '{n} unread',
  receipts: 'Read receipts',
  readBy: 'Read ({n})',
  unreadBy: 'Unread ({n})',
  loadOlder: 'Load older messages',
  loadingOlder: 'Loading older messages…',
  beginning: 'No older messages',
  jumpToLatest: 'Jump to latest',
  newMessages: 'New messages',
  mentionYou: '[You were mentioned]',
  mentionAll: 'Everyone',
  mentionPicker: 'Members to mention',
  announcement: 'Announcement',
  quoted: 'Quoted message',
  notLoaded: '(message not loaded)',
  selectConversation: 'Choose a conversation to start chatting',
  dissolved: 'This group was dissolved',
  groupInfo: 'Group settings',
  members: 'Members',
  memberCount: '{n} members',
  you: 'Me',
  justNow: 'just now',
  yesterday: 'Yesterday',
  pending: 'Waiting to send',
  createGroup: 'New group',
  groupName: 'Group name',
  groupNameRequired: 'Enter a group name',
  pickMembers: 'Choose members',
  selected: 'Selected ({n})',
  noneSelected: 'No members selected',
  create: 'Create',
  creating: 'Creating…',
  cancel: 'Cancel',
  close: 'Close',
  rename: 'Rename group',
  editAnnouncement: 'Edit announcement',
  addMembers: 'Add members',
  add: 'Add',
  remove: 'Remove',
  removeMember: 'Remove {name} from the group',
  leaveGroup: 'Leave group',
  dissolveGroup: 'Dissolve group',
  confirmLeave: 'Leave this group?',
  confirmDissolve: 'Dissolve this group? Nobody will be able to post in it.',
  makeAdmin: 'Make admin',
  unmakeAdmin: 'Remove admin',
  makeOwner: 'Transfer ownership',
  owner: 'Owner',
  admin: 'Admin',
  ok: 'OK',
  saved: 'Saved',
  actionFailed: 'Failed: {msg}',
  directory: 'Contacts',
  departments: 'Departments',
  searchDirectory: 'Search colleagues (name, pinyin or initials)',
  search: 'Search',
  noResults: 'No matching members',
  expand: 'Expand {name}',
  collapse: 'Collapse {name}',
  membersOf: 'Members of {name}',
  profile: 'Profile',
  title: 'Title',
  email: 'Email',
  mobile: 'Mobile',
  department: 'Department',
  status: 'Status',
  statusActive: 'Active',
  statusDisabled: 'Disabled',
  statusDeparted: 'Departed',
  sendMessage: 'Message',
  loadMore: 'Load more',
  skipToContent: 'Skip to content',
  error: 'Error: {msg}',
  moreActions: 'More actions',
  details: 'Details',
  notices: 'Notices',
  urgentNotice: 'Urgent notice',
  received: 'Received',
  sentByMe: 'Sent by me',
  noNotices: 'No urgent notices yet',
  newNotice: 'New urgent notice',
  ack: 'Acknowledge',
  acked: 'Acknowledged',
  notAcked: 'Not acknowledged',
  later: 'Later',
  withdrawnTag: 'Withdrawn',
  deadline: 'Due {time}',
  fromSender: 'From {name}',
  reminderN: 'Reminder {n}',
  noticeTitle: 'Title',
  noticeBody: 'Text',
  noticeTo: 'To',
  everyone: 'Everyone',
  noticeDepts: 'Departments (with those below them)',
  noticeUsers: 'Members',
  deadlineMinutes: 'Deadline (minutes from now)',
  remindMinutes: 'Remind every (minutes)',
  maxRounds: 'Reminders at most',
  sendingNotice: 'Sending…',
  countRecipients: 'Recipients',
  countDelivered: 'Delivered',
  countRead: 'Read',
  countAcked: 'Acknowledged',
  countReminded: 'Reminded',
  countEscalated: 'Reported to leaders',
  phase_sending: 'sending',
  phase_waiting: 'waiting for acknowledgements',
  phase_reminding: 'reminding',
  phase_escalating: 'reporting to leaders',
  phase_withdrawing: 'withdrawing',
  phase_done: 'finished',
  showUnacked: 'Who has not acknowledged',
  withdrawNotice: 'Withdraw',
  confirmWithdraw: 'Withdraw this urgent notice? Every recipient sees it withdrawn; no more reminders.',
  escalatedToYou: '{n} of your members had not acknowledged by the deadline',
  unackedCount: '{n} to acknowledge',
  attach: 'Send a file or picture',
  dropFiles: 'Drop to send',
  recordVoice: 'Hold to record a voice note, or click to start',
  recording: 'Recording',
  recordingHint: 'Release to send; at most 60 s',
  sendVoice: 'Send voice note',
  cancelRecording: 'Cancel recording',
  voiceTooShort: 'Too short to send',
  micFailed: 'Cannot use the microphone: {msg}',
  uploading: 'Uploading',
  uploadChunks: '{done} of {count} parts sent',
  uploadFailed: 'Upload failed: {msg}',
  cancelUpload: 'Cancel upload',
  imagePreview: '[Picture]',
  filePreview: '[File] {name}',
  voicePreview: '[Voice] {time}',
  openImage: 'Open picture: {name}',
  imageFailed: 'The picture did not load',
  download: 'Download',
  downloadName: 'Download {name}',
  downloadOriginal: 'Download original',
  downloading: 'Downloading {pct}',
  downloadFailed: 'Download failed: {msg}',
  playVoice: 'Play voice note, {time}',
  voiceLabel: 'Voice note',
  cannotPlay: 'Cannot play it here; download it to listen',
  fileGone: 'The file was recalled or deleted',
  fileForbidden: 'You may not see this file',
  announcements: 'Announcements',
  approvals: 'Approvals',
  unreadAnnouncements: '{n} unread announcements',
  waitingApprovals: '{n} waiting for you',
  confidential: 'Confidential: do not forward',
};

export type Lang = 'zh' | 'en';
const tables: Record<Lang, Dict> = { zh, en };
const LANG_KEY = 'enclave.lang';

function initialLang(): Lang {
  try {
    const saved = globalThis.localStorage?.getItem(LANG_KEY);
    if (saved === 'zh' || saved === 'en') return saved;
  } catch {
    /* no storage */
  }
  return 'zh';
}

let lang: Lang = initialLang();
const listeners = new Set<() => void>();

export function getLang(): Lang {
  return lang;
}

export function setLang(l: Lang): void {
  lang = l;
  try {
    globalThis.localStorage?.setItem(LANG_KEY, l);
  } catch {
    /* no storage */
  }
  if (typeof document !== 'undefined') document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
  for (const fn of listeners) fn();
}

export function onLangChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function t(key: Key, params?: Record<string, string | number>): string {
  let s: string = tables[lang][key] ?? zh[key];
  if (params) for (const [k, v] of Object.entries(params)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

// ------------------------------------------------------------------ times

const formatters = new Map<string, Intl.DateTimeFormat>();
function fmt(opts: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = lang + JSON.stringify(opts);
  let f = formatters.get(key);
  if (!f) {
    // The user's own time zone (the browser's), in the UI language.
    f = new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', opts);
    formatters.set(key, f);
  }
  return f;
}

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Short time for lists: 14:05 today, "Yesterday", 3月2日, 2025/3/2. */
export function shortTime(ms: number, now = Date.now()): string {
  if (!ms) return '';
  const d = new Date(ms);
  const n = new Date(now);
  if (sameDay(d, n)) return fmt({ hour: '2-digit', minute: '2-digit', hour12: false }).format(d);
  const y = new Date(now - 86400000);
  if (sameDay(d, y)) return t('yesterday');
  if (d.getFullYear() === n.getFullYear()) return fmt({ month: 'short', day: 'numeric' }).format(d);
  return fmt({ year: 'numeric', month: 'numeric', day: 'numeric' }).format(d);
}

/** Full time for a message: date and time in the user's time zone. */
export function fullTime(ms: number): string {
  return fmt({
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  }).format(new Date(ms));
}

/** Time of a message in the chat (HH:mm, with the date when not today). */
export function messageTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const hm = fmt({ hour: '2-digit', minute: '2-digit', hour12: false }).format(d);
  if (sameDay(d, new Date(now))) return hm;
  return `${shortTime(ms, now)} ${hm}`;
}
