// The acceptance page of an invitation (`#/accept/<code>`, no login): who
// invites, whether the code still works, the form (login id, name,
// organization, phone, email, password); then the login id to sign in with.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, NetworkError } from '../../api.ts';
import { fullTime, t } from '../../i18n.ts';
import { inviteCode, validUserid } from '../../logic/external.ts';
import { go } from '../../router.ts';
import { errorText } from '../../state.ts';
import { LangSwitch } from '../LangSwitch.tsx';
import { useStore } from '../hooks.ts';
import * as x from './api.ts';
import { xt } from './strings.ts';

function acceptError(e: unknown): string {
  if (e instanceof NetworkError) return t('networkError');
  if (e instanceof ApiError) {
    switch (e.code) {
      case 'already_exists':
        return xt('useridTaken');
      case 'already_used':
        return xt('statusUsed');
      case 'expired':
        return xt('statusExpired');
      case 'not_found':
        return xt('statusUnknown');
      case 'account_inactive':
        return xt('inviterInactive');
      case 'limit_exceeded':
        return xt('limitReached');
      case 'weak_password':
        return xt('weakPassword');
      case 'too_many_attempts':
      case 'rate_limited':
        return t('tooManyAttempts');
    }
  }
  return xt('error', { msg: errorText(e) });
}

type Fields = { userid: string; name: string; org: string; phone: string; email: string; password: string; confirm: string };

export function AcceptPage({ code: raw }: { code: string }) {
  const store = useStore();
  const code = inviteCode(raw);
  const [info, setInfo] = useState<x.InvitationInfo | null>(null);
  const [lookup, setLookup] = useState<'loading' | 'unknown' | 'failed' | 'ok'>('loading');
  const [f, setF] = useState<Fields>({ userid: '', name: '', org: '', phone: '', email: '', password: '', confirm: '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  useEffect(() => {
    if (!code) {
      setLookup('unknown');
      return;
    }
    let live = true;
    x.invitation(store.api, code).then(
      (v) => {
        if (!live) return;
        setInfo(v);
        setLookup('ok');
      },
      (e) => {
        if (!live) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 400)) setLookup('unknown');
        else {
          setLookup('failed');
          setError(acceptError(e));
        }
      },
    );
    return () => {
      live = false;
    };
  }, [code, store]);

  const set = (k: keyof Fields) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const userid = f.userid.trim();
    if (!validUserid(userid)) return setError(xt('loginIdInvalid'));
    if (!f.name.trim()) return setError(xt('required', { field: xt('name') }));
    if (!f.org.trim()) return setError(xt('required', { field: xt('org') }));
    const len = [...f.password].length;
    if (len < 8 || len > 256) return setError(xt('weakPassword'));
    if (f.password !== f.confirm) return setError(xt('passwordMismatch'));
    setBusy(true);
    setError(null);
    try {
      const r = await x.accept(store.api, {
        code,
        userid,
        name: f.name.trim(),
        org: f.org.trim(),
        phone: f.phone.trim(),
        email: f.email.trim(),
        password: f.password,
      });
      setDone(r.userid);
    } catch (err) {
      setError(acceptError(err));
    } finally {
      setBusy(false);
    }
  };

  const toLogin = (userid: string) => {
    store.loginHint = userid;
    go({ name: 'chats' });
  };

  let body;
  if (done) {
    body = (
      <div data-testid="accept-done">
        <p class="notice" role="status">
          {xt('acceptDone')}
        </p>
        <p>
          {xt('yourLoginId', { userid: done })}{' '}
        </p>
        <p>
          <strong class="login-id" data-testid="accept-login-id">
            {done}
          </strong>
        </p>
        <button type="button" class="primary wide" onClick={() => toLogin(done)} data-testid="accept-login">
          {xt('goLogin')}
        </button>
      </div>
    );
  } else if (lookup === 'loading') {
    body = <p role="status">{xt('loading')}</p>;
  } else if (lookup === 'unknown' || (info && info.status !== 'open')) {
    const text = lookup === 'unknown' ? xt('statusUnknown') : info?.status === 'used' ? xt('statusUsed') : xt('statusExpired');
    body = (
      <>
        <p class="form-error" role="alert" data-testid="accept-status" data-status={info?.status ?? 'unknown'}>
          {text}
        </p>
        <button type="button" class="wide" onClick={() => toLogin('')}>
          {xt('toLogin')}
        </button>
      </>
    );
  } else if (lookup === 'failed' || !info) {
    body = (
      <p class="form-error" role="alert">
        {error}
      </p>
    );
  } else {
    body = (
      <>
        <p data-testid="accept-inviter" data-inviter={info.inviter} data-status={info.status}>
          <strong>{xt('invitedBy', { inviter: info.inviter })}</strong>
        </p>
        <p class="muted">{xt('validUntil', { time: fullTime(info.expires_ms) })}</p>
        <form onSubmit={submit} data-testid="accept-form" novalidate>
          <div class="field">
            <label for="acc-userid">{xt('loginId')}</label>
            <input
              id="acc-userid"
              data-testid="accept-userid"
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellcheck={false}
              required
              maxLength={64}
              aria-describedby="acc-userid-hint"
              value={f.userid}
              onInput={set('userid')}
            />
            <small id="acc-userid-hint">{xt('loginIdHint')}</small>
          </div>
          <div class="field">
            <label for="acc-name">{xt('name')}</label>
            <input id="acc-name" data-testid="accept-name" autoComplete="name" required maxLength={64} value={f.name} onInput={set('name')} />
          </div>
          <div class="field">
            <label for="acc-org">{xt('org')}</label>
            <input
              id="acc-org"
              data-testid="accept-org"
              autoComplete="organization"
              required
              maxLength={64}
              value={f.org}
              onInput={set('org')}
            />
          </div>
          <div class="field">
            <label for="acc-phone">{xt('phone')}</label>
            <input id="acc-phone" data-testid="accept-phone" type="tel" autoComplete="tel" maxLength={64} value={f.phone} onInput={set('phone')} />
          </div>
          <div class="field">
            <label for="acc-email">{xt('email')}</label>
            <input id="acc-email" data-testid="accept-email" type="email" autoComplete="email" maxLength={64} value={f.email} onInput={set('email')} />
          </div>
          <div class="field">
            <label for="acc-pw">{xt('password')}</label>
            <input
              id="acc-pw"
              data-testid="accept-password"
              type="password"
              autoComplete="new-password"
              required
              aria-describedby="acc-pw-hint"
              value={f.password}
              onInput={set('password')}
            />
            <small id="acc-pw-hint">{xt('passwordHint')}</small>
          </div>
          <div class="field">
            <label for="acc-confirm">{xt('confirmPassword')}</label>
            <input
              id="acc-confirm"
              data-testid="accept-confirm"
              type="password"
              autoComplete="new-password"
              required
              value={f.confirm}
              onInput={set('confirm')}
            />
          </div>
          <p class="muted small">{xt('consent', { inviter: info.inviter })}</p>
          {error && (
            <p class="form-error" role="alert" data-testid="accept-error">
              {error}
            </p>
          )}
          <button type="submit" class="primary wide" disabled={busy} data-testid="accept-submit">
            {busy ? xt('accepting') : xt('acceptSubmit')}
          </button>
        </form>
      </>
    );
  }
  return (
    <div class="auth-page">
      <header class="auth-top">
        <LangSwitch />
      </header>
      <main class="auth-card" id="main" data-testid="accept-page">
        <h1 class="brand">{t('appName')}</h1>
        <h2>{xt('acceptTitle')}</h2>
        {body}
      </main>
    </div>
  );
}
