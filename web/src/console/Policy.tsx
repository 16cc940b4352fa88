import { useEffect, useState } from 'preact/hooks';
import { call, get } from './api.ts';
import { Field, FlashLine, Section, errorText, useAction } from './common.tsx';
import { ExternalPolicyView } from './External.tsx';
import { ct } from './strings.ts';

type Policy = Record<string, number | string>;

const NUMERIC = [
  'max_group_members',
  'max_text_chars',
  'recall_window_ms',
  'session_ttl_ms',
  'refresh_ttl_ms',
  'lockout_threshold',
  'lockout_ms',
  'max_announcement_chars',
  'audit_retention_days',
] as const;

export function PolicyView(props: { role: string }) {
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [form, setForm] = useState<Record<string, string>>({});
  const [leaders, setLeaders] = useState<boolean | null>(null);
  const act = useAction();
  const editable = props.role === 'secadmin';
  const load = async () => {
    setLeaders((await get<{ leaders_may_send: boolean }>('/v1/policy/notices')).leaders_may_send);
    const p = await get<Policy>('/v1/policy');
    setPolicy(p);
    setForm(Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)])));
  };
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!policy) return;
    void act.run(async () => {
      const body: Policy = { ...policy };
      for (const k of NUMERIC) if (k in body) body[k] = Number(form[k]);
      body.directory_visibility = form.directory_visibility;
      await call('PUT', '/v1/policy', body);
      await load();
      return ct('policySaved');
    });
  };
  return (
    <div class="stack">
      <Section title={ct('tabPolicy')} testid="policy">
        {!editable ? <p class="muted" data-testid="policy-readonly">{ct('policyReadOnly')}</p> : null}
        {!policy ? (
          <>
            <FlashLine flash={act.flash} />
            <p class="muted">{ct('loading')}</p>
          </>
        ) : (
          <form class="form policy" onSubmit={submit}>
            <fieldset disabled={!editable || act.busy}>
              {NUMERIC.filter((k) => k in policy).map((k) => (
                <Field key={k} label={ct(`p_${k}`)} hint={k}>
                  <input
                    type="number"
                    min={0}
                    required
                    value={form[k] ?? ''}
                    data-testid={`policy-${k}`}
                    onInput={(e) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value })}
                  />
                </Field>
              ))}
              <label class="check">
                <input
                  type="checkbox"
                  checked={leaders ?? false}
                  data-testid="policy-leaders-may-send"
                  onChange={(e) => {
                    const on = (e.target as HTMLInputElement).checked;
                    setLeaders(on);
                    void act
                      .run(async () => {
                        await call('PUT', '/v1/policy/notices', { leaders_may_send: on });
                        return ct('policySaved');
                      })
                      .then((ok) => {
                        if (!ok) setLeaders(!on);
                      });
                  }}
                />{' '}
                {ct('p_leaders_may_send')}
              </label>
              <Field label={ct('p_directory_visibility')} hint="directory_visibility">
                <select
                  value={form.directory_visibility}
                  data-testid="policy-directory_visibility"
                  onChange={(e) => setForm({ ...form, directory_visibility: (e.target as HTMLSelectElement).value })}
                >
                  <option value="all">{ct('visAll')}</option>
                  <option value="own_departments">{ct('visOwn')}</option>
                </select>
              </Field>
            </fieldset>
            <FlashLine flash={act.flash} />
            {editable ? (
              <div class="row end">
                <button type="submit" class="primary" disabled={act.busy} data-testid="policy-save">
                  {act.busy ? ct('saving') : ct('save')}
                </button>
              </div>
            ) : null}
          </form>
        )}
      </Section>
      <ExternalPolicyView editable={editable} />
    </div>
  );
}
