import { useEffect, useState } from 'preact/hooks';
import { Dialog } from '../ui/Dialog.tsx';
import { call, get } from './api.ts';
import { Field, FlashLine, Section, errorText, useAction } from './common.tsx';
import { ct } from './strings.ts';

const SCOPES = ['directory:read', 'directory:write', 'message:send', 'appchat', 'oauth', 'approval'] as const;

function scopeText(s: (typeof SCOPES)[number]): string {
  return ct(`scope_${s.replace(':', '_')}` as Parameters<typeof ct>[0]);
}

interface App {
  corpid: string;
  agentid: number;
  name: string;
  enabled: boolean;
  scopes: string[];
  trusted_domains: string[];
  secret_generation: number;
  callback: { url: string } | null;
}

function ScopeChecks(props: { value: string[]; onChange: (v: string[]) => void }) {
  return (
    <fieldset class="checks">
      <legend>{ct('scopes')}</legend>
      {SCOPES.map((s) => (
        <label key={s} class="check">
          <input
            type="checkbox"
            checked={props.value.includes(s)}
            data-testid={`scope-${s}`}
            onChange={(e) => props.onChange((e.target as HTMLInputElement).checked ? [...props.value, s] : props.value.filter((x) => x !== s))}
          />{' '}
          <code>{s}</code> <span class="muted small">{scopeText(s)}</span>
        </label>
      ))}
    </fieldset>
  );
}

/** The one time a secret is shown. */
function SecretDialog(props: { app: App & { secret: string }; onClose: () => void }) {
  return (
    <Dialog title={ct('appCreated')} onClose={props.onClose} testid="secret-dialog">
      <p class="flash error" role="alert">
        {ct('secretOnce')}
      </p>
      <dl class="kv">
        <dt>{ct('corpid')}</dt>
        <dd>
          <code data-testid="shown-corpid">{props.app.corpid}</code>
        </dd>
        <dt>{ct('agentid')}</dt>
        <dd>
          <code data-testid="shown-agentid">{props.app.agentid}</code>
        </dd>
        <dt>{ct('secret')}</dt>
        <dd>
          <code data-testid="shown-secret" class="secret">
            {props.app.secret}
          </code>
        </dd>
      </dl>
      <div class="row end">
        <button type="button" class="primary" onClick={props.onClose}>
          {ct('close')}
        </button>
      </div>
    </Dialog>
  );
}

export function Apps() {
  const [apps, setApps] = useState<App[] | null>(null);
  const [dialog, setDialog] = useState<null | { kind: 'create' } | { kind: 'scopes'; app: App } | { kind: 'secret'; app: App & { secret: string } }>(null);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>([]);
  const [domains, setDomains] = useState('');
  const act = useAction();
  const load = async () => setApps((await get<{ apps: App[] }>('/v1/apps')).apps);
  useEffect(() => {
    load().catch((e) => act.setFlash({ kind: 'error', text: errorText(e) }));
  }, []);
  return (
    <Section
      title={ct('tabApps')}
      testid="apps"
      actions={
        <button
          type="button"
          class="primary"
          data-testid="app-register"
          onClick={() => {
            setName('');
            setScopes([]);
            setDomains('');
            setDialog({ kind: 'create' });
          }}
        >
          {ct('registerApp')}
        </button>
      }
    >
      <FlashLine flash={act.flash} />
      {!apps ? (
        <p class="muted">{ct('loading')}</p>
      ) : apps.length === 0 ? (
        <p class="muted">{ct('noApps')}</p>
      ) : (
        <div class="table-wrap" tabIndex={0} role="region" aria-label={ct('scrollTable')}>
          <table class="grid" data-testid="app-table">
            <thead>
              <tr>
                <th scope="col">{ct('agentid')}</th>
                <th scope="col">{ct('appName')}</th>
                <th scope="col">{ct('status')}</th>
                <th scope="col">{ct('scopes')}</th>
                <th scope="col">{ct('callback')}</th>
                <th scope="col" class="num">
                  {ct('secretGeneration')}
                </th>
                <th scope="col">
                  <span class="sr-only">{ct('manage')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {apps.map((a) => (
                <tr key={a.agentid} data-testid="app-row" data-name={a.name} data-enabled={String(a.enabled)}>
                  <td>{a.agentid}</td>
                  <td>{a.name}</td>
                  <td>{a.enabled ? ct('enabled') : ct('disabledApp')}</td>
                  <td>{a.scopes.join(', ')}</td>
                  <td>{a.callback?.url ?? '–'}</td>
                  <td class="num">{a.secret_generation}</td>
                  <td class="row wrap">
                    <button
                      type="button"
                      disabled={act.busy}
                      data-testid={a.enabled ? 'app-disable' : 'app-enable'}
                      onClick={() =>
                        void act.run(async () => {
                          await call('POST', `/v1/apps/${a.agentid}/${a.enabled ? 'disable' : 'enable'}`, {});
                          await load();
                          return `${a.name}: ${a.enabled ? ct('disabledApp') : ct('enabled')}`;
                        })
                      }
                    >
                      {a.enabled ? ct('disable') : ct('activate')}
                    </button>
                    <button type="button" disabled={act.busy} onClick={() => (setScopes(a.scopes), setDialog({ kind: 'scopes', app: a }))}>
                      {ct('editScopes')}
                    </button>
                    <button
                      type="button"
                      disabled={act.busy}
                      onClick={() => {
                        if (!confirm(ct('confirmRotate', { name: a.name }))) return;
                        void act.run(async () => {
                          const v = await call<App & { secret: string }>('POST', `/v1/apps/${a.agentid}/rotate-secret`, {});
                          setDialog({ kind: 'secret', app: v });
                          await load();
                        });
                      }}
                    >
                      {ct('rotateSecret')}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {dialog?.kind === 'create' ? (
        <Dialog title={ct('registerApp')} onClose={() => setDialog(null)} testid="app-dialog">
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              void act.run(async () => {
                const v = await call<App & { secret: string }>('POST', '/v1/apps', {
                  name: name.trim(),
                  scopes,
                  trusted_domains: domains
                    .split(/[,，\s]+/)
                    .map((s) => s.trim())
                    .filter(Boolean),
                });
                setDialog({ kind: 'secret', app: v });
                await load();
              });
            }}
          >
            <Field label={ct('appName')}>
              <input required maxLength={64} value={name} data-testid="app-name" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
            </Field>
            <ScopeChecks value={scopes} onChange={setScopes} />
            <Field label={ct('trustedDomains')}>
              <input value={domains} onInput={(e) => setDomains((e.target as HTMLInputElement).value)} />
            </Field>
            <FlashLine flash={act.flash} />
            <div class="row end">
              <button type="button" onClick={() => setDialog(null)}>
                {ct('cancel')}
              </button>
              <button type="submit" class="primary" disabled={act.busy} data-testid="app-create">
                {ct('registerApp')}
              </button>
            </div>
          </form>
        </Dialog>
      ) : null}
      {dialog?.kind === 'scopes' ? (
        <Dialog title={`${ct('editScopes')}: ${dialog.app.name}`} onClose={() => setDialog(null)}>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              const app = dialog.app;
              void act.run(async () => {
                await call('PUT', `/v1/apps/${app.agentid}/scopes`, { scopes });
                setDialog(null);
                await load();
                return `${app.name}: ${scopes.join(', ')}`;
              });
            }}
          >
            <ScopeChecks value={scopes} onChange={setScopes} />
            <div class="row end">
              <button type="button" onClick={() => setDialog(null)}>
                {ct('cancel')}
              </button>
              <button type="submit" class="primary" disabled={act.busy}>
                {ct('save')}
              </button>
            </div>
          </form>
        </Dialog>
      ) : null}
      {dialog?.kind === 'secret' ? <SecretDialog app={dialog.app} onClose={() => setDialog(null)} /> : null}
    </Section>
  );
}
