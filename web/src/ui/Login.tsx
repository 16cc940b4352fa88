import { useState } from 'preact/hooks';
import { ApiError, NetworkError } from '../api.ts';
import { t } from '../i18n.ts';
import type { Store } from '../state.ts';
import { LangSwitch } from './LangSwitch.tsx';

function loginError(e: unknown): string {
  if (e instanceof NetworkError) return t('networkError');
  if (e instanceof ApiError) {
    switch (e.code) {
      case 'unauthenticated':
        return t('loginFailed');
      case 'account_locked':
        return t('accountLocked');
      case 'too_many_attempts':
      case 'rate_limited':
        return t('tooManyAttempts');
      case 'account_inactive':
        return t('accountInactive');
      default:
        return t('error', { msg: e.message || e.code });
    }
  }
  return t('error', { msg: String(e) });
}

export function Login({ store }: { store: Store }) {
  // After accepting an invitation: the login id just chosen.
  const [userid, setUserid] = useState(store.loginHint);
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!userid || !password || busy) return;
    setBusy(true);
    setError(null);
    try {
      await store.login(userid.trim(), password);
    } catch (err) {
      setError(loginError(err));
      setBusy(false);
    }
  };
  return (
    <div class="auth-page">
      <header class="auth-top">
        <LangSwitch />
      </header>
      <main class="auth-card" id="main">
        <h1 class="brand">{t('appName')}</h1>
        <h2>{t('loginTitle')}</h2>
        {store.notice === 'session' && !error && <p class="notice" role="status">{t('sessionEnded')}</p>}
        <form onSubmit={submit} data-testid="login-form" novalidate>
          <div class="field">
            <label for="login-userid">{t('userid')}</label>
            <input
              id="login-userid"
              data-testid="login-userid"
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellcheck={false}
              required
              value={userid}
              onInput={(e) => setUserid((e.target as HTMLInputElement).value)}
            />
          </div>
          <div class="field">
            <label for="login-password">{t('password')}</label>
            <input
              id="login-password"
              data-testid="login-password"
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
            />
          </div>
          {error && (
            <p class="form-error" role="alert" data-testid="login-error">
              {error}
            </p>
          )}
          <button type="submit" class="primary wide" data-testid="login-submit" disabled={busy}>
            {busy ? t('loggingIn') : t('login')}
          </button>
        </form>
      </main>
    </div>
  );
}

export function ChangePassword({ store, forced, onDone }: { store: Store; forced: boolean; onDone?: () => void }) {
  const [oldPw, setOld] = useState('');
  const [newPw, setNew] = useState('');
  const [confirm, setConfirm] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const len = [...newPw].length;
    if (len < 8 || len > 256) return setError(t('weakPassword'));
    if (newPw !== confirm) return setError(t('passwordMismatch'));
    setBusy(true);
    setError(null);
    try {
      await store.changePassword(oldPw, newPw);
      setDone(true);
      onDone?.();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'wrong_password') setError(t('wrongPassword'));
      else if (err instanceof ApiError && err.code === 'weak_password') setError(t('weakPassword'));
      else if (err instanceof NetworkError) setError(t('networkError'));
      else setError(t('error', { msg: err instanceof Error ? err.message : String(err) }));
    } finally {
      setBusy(false);
    }
  };
  const form = (
    <form onSubmit={submit} data-testid="password-form" novalidate>
      {forced && <p class="notice">{t('mustChangePassword')}</p>}
      <div class="field">
        <label for="pw-old">{t('oldPassword')}</label>
        <input id="pw-old" type="password" autoComplete="current-password" required value={oldPw}
          onInput={(e) => setOld((e.target as HTMLInputElement).value)} />
      </div>
      <div class="field">
        <label for="pw-new">{t('newPassword')}</label>
        <input id="pw-new" type="password" autoComplete="new-password" required aria-describedby="pw-rule" value={newPw}
          onInput={(e) => setNew((e.target as HTMLInputElement).value)} />
        <small id="pw-rule">{t('passwordRule')}</small>
      </div>
      <div class="field">
        <label for="pw-confirm">{t('confirmPassword')}</label>
        <input id="pw-confirm" type="password" autoComplete="new-password" required value={confirm}
          onInput={(e) => setConfirm((e.target as HTMLInputElement).value)} />
      </div>
      {error && <p class="form-error" role="alert">{error}</p>}
      {done && <p class="notice" role="status">{t('passwordChanged')}</p>}
      <div class="form-actions">
        {forced && (
          <button type="button" onClick={() => store.logout()}>
            {t('logout')}
          </button>
        )}
        <button type="submit" class="primary" data-testid="password-submit" disabled={busy}>
          {busy ? t('saving') : t('save')}
        </button>
      </div>
    </form>
  );
  if (!forced) return form;
  return (
    <div class="auth-page">
      <header class="auth-top">
        <LangSwitch />
      </header>
      <main class="auth-card" id="main">
        <h1 class="brand">{t('appName')}</h1>
        <h2>{t('changePasswordTitle')}</h2>
        {form}
      </main>
    </div>
  );
}
