// Pure parts of the console's 外部联系人 page: the admin API's shapes
// (node/src/admin/external.rs) and how a duration reads.

export interface Unassigned {
  employee: string;
  name: string | null;
  departed_ms: number;
  contacts: { userid: string; name: string; org: string }[];
  groups: { id: string; name: string; member_count: number }[];
}

export type TransferStatus = 'waiting' | 'done' | 'cancelled';

export interface Transfer {
  id: number;
  from: string;
  to: string;
  externals: string[];
  groups: string[];
  /** A leader's userid, or `admin` / `app:<agentid>`. */
  by: string;
  message: string;
  created_ms: number;
  due_ms: number;
  status: TransferStatus;
  objected: string[];
  finished_ms: number;
}

export interface ExternalAccount {
  userid: string;
  name: string;
  org: string;
  phone: string;
  email: string;
  invited_by: string;
  created_ms: number;
  disabled: boolean;
  served_by?: string[];
}

export interface ExternalPolicy {
  max_contacts_per_employee: number;
  max_customer_group_members: number;
  invitation_ttl_ms: number;
  transfer_window_ms: number;
}

export const POLICY_FIELDS = [
  'max_contacts_per_employee',
  'max_customer_group_members',
  'invitation_ttl_ms',
  'transfer_window_ms',
] as const satisfies readonly (keyof ExternalPolicy)[];

/** A duration in milliseconds as people say it: "7 d", "24 h", "90 min", "30 s", "250 ms" (largest whole unit, one decimal). */
export function durationText(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [size, name] of units) {
    if (ms >= size) {
      const v = ms / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${name}`;
    }
  }
  return `${ms} ms`;
}
