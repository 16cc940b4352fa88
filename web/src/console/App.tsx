import { useEffect, useState } from 'preact/hooks';
import { LangSwitch } from '../ui/LangSwitch.tsx';
import { useLang } from '../ui/hooks.ts';
import { AdminError, type Status, get } from './api.ts';
import { Apps } from './Apps.tsx';
import { Audit } from './Audit.tsx';
import { Cluster } from './Cluster.tsx';
import { Directory } from './Directory.tsx';
import { External } from './External.tsx';
import { Office } from './Office.tsx';
import { PolicyView } from './Policy.tsx';
import { errorText } from './common.tsx';
import { ct, roleName } from './strings.ts';

type Tab = 'cluster' | 'directory' | 'apps' | 'office' | 'external' | 'policy' | 'audit';

/**
 * What each role sees: the same split as the admin port's routes
 * (docs/security/roles.md). Hiding a tab is a convenience; the server
 * refuses the calls of a role that may not make them.
 */
export const TABS: Record<string, Tab[]> = {
  sysadmin: ['cluster', 'directory', 'apps', 'office', 'external', 'policy'],
  secadmin: ['cluster', 'policy'],
  auditor: ['audit', 'office', 'external', 'cluster'],
};

function tabName(t: Tab): string {
  switch (t) {
    case 'cluster':
      return ct('tabCluster');
    case 'directory':
      return ct('tabDirectory');
    case 'apps':
      return ct('tabApps');
    case 'office':
      return ct('tabOffice');
    case 'external':
      return ct('tabExternal');
    case 'policy':
      return ct('tabPolicy');
    case 'audit':
      return ct('tabAudit');
  }
}

function hashTab(): string {
  return location.hash.replace(/^#\/?/, '');
}

export function ConsoleApp() {
  useLang();
  const [me, setMe] = useState<Status | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [tab, setTab] = useState<string>(hashTab());
  useEffect(() => {
    get<Status>('/v1/status').then(setMe, setErr);
    const f = () => setTab(hashTab());
    window.addEventListener('hashchange', f);
    return () => window.removeEventListener('hashchange', f);
  }, []);
  useEffect(() => {
    document.title = ct('consoleTitle');
  });
  if (err) {
    const denied = err instanceof AdminError && (err.status === 401 || err.status === 403);
    return (
      <main class="console-main narrow" id="main">
        <h1>{ct('noAccessTitle')}</h1>
        <p role="alert" data-testid="console-denied">
          {denied ? ct('noAccess') : errorText(err)}
        </p>
        {denied ? <p class="muted">{errorText(err)}</p> : null}
      </main>
    );
  }
  if (!me) return <p class="muted pad">{ct('loading')}</p>;
  const tabs = TABS[me.caller.role] ?? [];
  const current = (tabs.includes(tab as Tab) ? tab : tabs[0]) as Tab | undefined;
  return (
    <div class="console-shell">
      <header class="console-head">
        <h1>{ct('consoleTitle')}</h1>
        <p class="who" data-testid="console-who" data-role={me.caller.role}>
          {ct('signedInAs', { name: me.caller.name, role: roleName(me.caller.role) })} · {ct('onNode', { node: me.node_id })} · v{me.version}
        </p>
        <LangSwitch />
      </header>
      <nav aria-label={ct('nav')} class="console-tabs">
        {tabs.map((t) => (
          <a
            key={t}
            href={`#/${t}`}
            aria-current={t === current ? 'page' : undefined}
            class={t === current ? 'tab active' : 'tab'}
            data-testid={`tab-${t}`}
          >
            {tabName(t)}
          </a>
        ))}
      </nav>
      <main class="console-main" id="main">
        {current === 'cluster' ? <Cluster role={me.caller.role} /> : null}
        {current === 'directory' ? <Directory /> : null}
        {current === 'apps' ? <Apps /> : null}
        {current === 'office' ? <Office role={me.caller.role} /> : null}
        {current === 'external' ? <External role={me.caller.role} /> : null}
        {current === 'policy' ? <PolicyView role={me.caller.role} /> : null}
        {current === 'audit' ? <Audit /> : null}
        {!current ? <p data-testid="console-denied">{ct('noAccess')}</p> : null}
      </main>
    </div>
  );
}
