// The admin console (served at / on the admin port, for operator
// certificates). See console/App.tsx.
import { render } from 'preact';
import './styles.css';
import './console.css';
import { getLang, setLang } from './i18n.ts';
import { ConsoleApp } from './console/App.tsx';

setLang(getLang());
render(<ConsoleApp />, document.getElementById('console')!);
