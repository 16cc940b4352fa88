// The client API of external contacts (`/v1/external/...`), on the
// store's Api (failover, retries, tokens). docs/api/README.md § External
// contacts has the shapes.
import type { Api, Conversation } from '../../api.ts';
import type { Rule } from '../../logic/external.ts';

/** An employee's external contact (`GET /v1/external/contacts` as an employee). */
export interface ExternalContact {
  userid: string;
  name: string;
  org: string;
  phone: string;
  email: string;
  invited_by: string;
  created_ms: number;
  disabled: boolean;
  conversation: string | null;
  since_ms: number;
  /** The employee who served them before a transfer. */
  previous: string | null;
}

/** An employee who serves an external account (the same route, as the external account). */
export interface ServingEmployee {
  userid: string;
  name: string;
  title: string;
  conversation: string | null;
}

export interface Invitation {
  code: string;
  expires_ms: number;
  /** `/#/accept/<code>` on any node. */
  link: string;
}

export interface InvitationInfo {
  inviter: string;
  expires_ms: number;
  status: 'open' | 'used' | 'expired';
}

export interface AcceptBody {
  code: string;
  userid: string;
  name: string;
  org: string;
  phone: string;
  email: string;
  password: string;
}

export function invite(api: Api): Promise<Invitation> {
  // Not repeated after an unknown outcome: each call makes a new code.
  return api.call('POST', '/v1/external/invitations', { retry: 'once' });
}

/** No login: who invites, and whether the code still works. */
export function invitation(api: Api, code: string): Promise<InvitationInfo> {
  return api.call('GET', `/v1/external/invitations/${encodeURIComponent(code)}`, { auth: false });
}

/** No login: the invited person consents and sets a password. */
export function accept(api: Api, body: AcceptBody): Promise<{ userid: string; conversation: string }> {
  // A repeat after an unknown outcome is refused (`already_used`) rather
  // than making a second account, so only a definite "took nothing" retries.
  return api.call('POST', '/v1/external/accept', { body, auth: false, retry: 'once', timeoutMs: 30000 });
}

export function contacts<T = ExternalContact>(api: Api): Promise<{ contacts: T[] }> {
  return api.call('GET', '/v1/external/contacts');
}

export function groups(api: Api): Promise<{ groups: Conversation[] }> {
  return api.call('GET', '/v1/external/groups');
}

export function createGroup(api: Api, name: string, members: string[]): Promise<Conversation> {
  return api.call('POST', '/v1/external/groups', { body: { name, members } });
}

export function autoReplies(api: Api, conv: string): Promise<{ rules: Rule[] }> {
  return api.call('GET', `/v1/external/groups/${encodeURIComponent(conv)}/auto-replies`);
}

/** Replaces every rule (the same body twice is the same result: safe to repeat). */
export function setAutoReplies(api: Api, conv: string, rules: Rule[]): Promise<{ rules: Rule[] }> {
  return api.call('PUT', `/v1/external/groups/${encodeURIComponent(conv)}/auto-replies`, { body: { rules }, retry: 'safe' });
}
