// The admin console (served at / on the admin port). A placeholder until
// it is built; kept so the build has both entries.
import { render } from 'preact';
import './console.css';

function Console() {
  return (
    <main class="console">
      <h1>Console</h1>
      <p>Enclave 管理控制台 / Enclave admin console</p>
    </main>
  );
}

render(<Console />, document.getElementById('console')!);
