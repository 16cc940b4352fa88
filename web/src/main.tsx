// The employee web client (served at / on the api port).
import { render } from 'preact';
import './styles.css';
import { Store } from './state.ts';
import { App } from './ui/App.tsx';
import { StoreContext } from './ui/hooks.ts';
import { getLang, setLang } from './i18n.ts';

setLang(getLang());
const store = new Store(location.origin, window.sessionStorage);
// Exposed for debugging and the browser tests' diagnostics (no secrets: the token lives in sessionStorage anyway).
(window as unknown as { enclave?: unknown }).enclave = { store };
render(
  <StoreContext.Provider value={store}>
    <App />
  </StoreContext.Provider>,
  document.getElementById('app')!,
);
store.start();
