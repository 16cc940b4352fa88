// Inline SVG icons (part of the DOM: no image requests, CSP-safe).
export function ChatIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm0 2v10h2v2l2.5-2H20V6H4zm3 3h10v2H7V9zm0 3h7v2H7v-2z" />
    </svg>
  );
}

export function ContactsIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M9 4a4 4 0 1 1 0 8 4 4 0 0 1 0-8zm0 2a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm8 1a3 3 0 1 1 0 6 3 3 0 0 1 0-6zm0 2a1 1 0 1 0 0 2 1 1 0 0 0 0-2zM9 13c3.3 0 6 1.6 6 4v3H3v-3c0-2.4 2.7-4 6-4zm0 2c-2.3 0-4 1-4 2v1h8v-1c0-1-1.7-2-4-2zm8-1c2.8 0 5 1.3 5 3.2V20h-5v-2h3v-.8c0-.6-1.3-1.2-3-1.2-.4 0-.8 0-1.2.1l-.6-1.9c.6-.1 1.2-.2 1.8-.2z" />
    </svg>
  );
}

export function NoticeIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M12 2a1 1 0 0 1 1 1v1.1A7 7 0 0 1 19 11v4.6l1.7 2.6A1 1 0 0 1 19.9 20H4.1a1 1 0 0 1-.8-1.8L5 15.6V11a7 7 0 0 1 6-6.9V3a1 1 0 0 1 1-1zm0 4a5 5 0 0 0-5 5v5a1 1 0 0 1-.2.6l-.8 1.4h12l-.8-1.4A1 1 0 0 1 17 16v-5a5 5 0 0 0-5-5zm-2 15h4a2 2 0 0 1-4 0z" />
    </svg>
  );
}

export function AnnouncementIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M19 3a1 1 0 0 1 1 1v14a1 1 0 0 1-1.5.9L13.7 16H11l.9 4.2a1 1 0 0 1-1 1.2H8.6a1 1 0 0 1-1-.8L6.7 16H5a3 3 0 0 1-3-3V9a3 3 0 0 1 3-3h8.7l4.8-2.9A1 1 0 0 1 19 3zm-1 2.8-3.5 2.1a1 1 0 0 1-.5.1H5a1 1 0 0 0-1 1v4a1 1 0 0 0 1 1h9a1 1 0 0 1 .5.1l3.5 2.1V5.8zM8.8 16l.6 3.4h.3L9 16h-.2zM21.5 9a1 1 0 0 1 1 1v2a1 1 0 1 1-2 0v-2a1 1 0 0 1 1-1z" />
    </svg>
  );
}

export function ApprovalIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M9 2h6a2 2 0 0 1 2 2h1a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h1a2 2 0 0 1 2-2zm0 2v2h6V4H9zM7 6H6v14h12V6h-1a2 2 0 0 1-2 2H9a2 2 0 0 1-2-2zm8.3 4.3 1.4 1.4-5.7 5.7-3.2-3.2 1.4-1.4 1.8 1.8 4.3-4.3z" />
    </svg>
  );
}

export function FileIcon() {
  return (
    <svg class="icon file-icon" viewBox="0 0 24 24" width="32" height="32" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M6 2h8l6 6v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm0 2v16h12V9h-5V4H6zm9 .8V7h2.2L15 4.8zM8 12h8v2H8v-2zm0 4h8v2H8v-2z" />
    </svg>
  );
}

export function AttachIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10h-1.5z" />
    </svg>
  );
}

export function MicIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M12 2a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V5a3 3 0 0 1 3-3zm0 2a1 1 0 0 0-1 1v6a1 1 0 0 0 2 0V5a1 1 0 0 0-1-1zm-7 7h2a5 5 0 0 0 10 0h2a7 7 0 0 1-6 6.9V21h-2v-3.1A7 7 0 0 1 5 11z" />
    </svg>
  );
}

export function ExternalIcon() {
  return (
    <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M8 4a4 4 0 1 1 0 8 4 4 0 0 1 0-8zm0 2a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm0 7c3.3 0 6 1.6 6 4v3H2v-3c0-2.4 2.7-4 6-4zm0 2c-2.3 0-4 1-4 2v1h8v-1c0-1-1.7-2-4-2zm9-10h5v5h-2V8.4l-3.3 3.3-1.4-1.4L18.6 7H17V5zm-2 9h2v4h4v2h-6v-6z" />
    </svg>
  );
}
