#!/usr/bin/env node
// A stand-in for the Rust test harness, for developing the browser tests
// before the nodes serve web/dist themselves.
//
//   node web/tests/dev-harness.mjs chat.mjs [failover.mjs …]
//
// It starts a throw-away 3-node cluster from target/debug (no build),
// seeds a department and the users zhangsan/张三, lisi/李四, wangwu/王五
// (passwords already changed), and puts an HTTPS proxy in front of each
// node that does what the node will do itself: serve web/dist at / with
// the strict CSP, answer GET /v1/nodes, and allow CORS between the
// cluster's origins. Then it runs each test with ENCLAVE_NODES,
// ENCLAVE_USERS and ENCLAVE_ARTIFACTS set, answering `@@control
// {"kill": i}` by killing node i (and its proxy). Loopback only.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, '..');
const root = resolve(web, '..');
const bin = process.env.ENCLAVE_BIN_DIR || join(root, 'target', 'debug');
const dist = join(web, 'dist');
const N = 3;
const BASE = Number(process.env.DEV_HARNESS_PORT_BASE || 27000);
const PASSWORD = 'Test-Passw0rd-1';
const USERS = {
  zhangsan: { password: PASSWORD, name: '张三' },
  lisi: { password: PASSWORD, name: '李四' },
  wangwu: { password: PASSWORD, name: '王五' },
};

const ports = (i) => ({
  peer: BASE + 400 + 10 * i,
  api: BASE + 443 + 10 * i,
  admin: BASE + 643 + 10 * i,
  proxy: BASE + 843 + i,
});

const log = (...a) => console.error('[harness]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dead = (c) => !c || c.exitCode !== null || c.signalCode !== null;

const dir = mkdtempSync(join(tmpdir(), 'enclave-web-'));
const ca = join(dir, 'ca');
const op = join(dir, 'operator');
const nodes = [];
const proxies = [];

function ctl(args, endpointIndex = 0) {
  return execFileSync(join(bin, 'enclavectl'), ['--cert-dir', op, '--endpoint', `https://127.0.0.1:${ports(endpointIndex).admin}`, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function until(what, fn, ms = 60000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}: ${last?.message ?? ''}`);
}

function startNode(i) {
  const n = join(dir, `node-${i + 1}`);
  mkdirSync(n, { recursive: true });
  const p = ports(i);
  const env = { ...process.env };
  env.ENCLAVE_TLS__CA_DIR = i === 0 ? ca : '';
  const child = spawn(
    join(bin, 'enclave'),
    ['start', '--data-dir', n, '--listen-peer', `127.0.0.1:${p.peer}`, '--listen-api', `127.0.0.1:${p.api}`, '--listen-admin', `127.0.0.1:${p.admin}`],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.on('data', () => {});
  nodes[i] = child;
}

// ------------------------------------------------------------------ proxy

const caPem = () => readFileSync(join(ca, 'ca.pem'));
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png' };

function origins() {
  return Array.from({ length: N }, (_, i) => `https://127.0.0.1:${ports(i).proxy}`);
}

function csp() {
  const others = origins().flatMap((o) => [o, o.replace('https:', 'wss:')]).join(' ');
  return `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ${others}; frame-ancestors 'none'`;
}

function startProxy(i) {
  const p = ports(i);
  const cert = readFileSync(join(dir, 'proxy', 'cert.pem'));
  const key = readFileSync(join(dir, 'proxy', 'key.pem'));
  const sockets = new Set();
  const server = https.createServer({ cert, key }, (req, res) => {
    const origin = req.headers.origin;
    const cors = origin && origins().includes(origin)
      ? {
          'access-control-allow-origin': origin,
          'access-control-allow-headers': 'authorization, content-type, idempotency-key',
          'access-control-allow-methods': 'GET, POST, PUT, PATCH, DELETE',
          'access-control-max-age': '600',
          vary: 'origin',
        }
      : {};
    const url = new URL(req.url, 'https://x');
    if (req.method === 'OPTIONS' && url.pathname.startsWith('/v1/')) {
      res.writeHead(204, cors);
      return res.end();
    }
    if (url.pathname === '/v1/nodes' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json', ...cors });
      return res.end(JSON.stringify({ nodes: origins().map((o, j) => ({ id: `node-${j + 1}`, api_url: o })) }));
    }
    if (url.pathname.startsWith('/v1/')) {
      const up = https.request(
        { host: '127.0.0.1', port: p.api, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${p.api}` }, ca: caPem(), servername: 'localhost' },
        (ur) => {
          const h = { ...ur.headers, ...cors };
          res.writeHead(ur.statusCode, h);
          ur.pipe(res);
        },
      );
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json', ...cors });
        res.end('{"error":{"code":"bad_gateway","message":"node down"}}');
      });
      req.pipe(up);
      return;
    }
    // Static files: the client at /, hashed assets under /assets/.
    let file = url.pathname === '/' ? '/index.html' : url.pathname;
    const path = join(dist, file);
    if (!path.startsWith(dist) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(200, {
      'content-type': MIME[extname(path)] ?? 'application/octet-stream',
      'content-security-policy': csp(),
      'x-content-type-options': 'nosniff',
      'cache-control': file.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(readFileSync(path));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket, head) => {
    sockets.add(socket);
    const up = tls.connect({ host: '127.0.0.1', port: p.api, ca: caPem(), servername: 'localhost' }, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let k = 0; k < req.rawHeaders.length; k += 2) {
        const name = req.rawHeaders[k];
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? `127.0.0.1:${p.api}` : req.rawHeaders[k + 1]}`);
      }
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head?.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(up);
    const end = () => {
      socket.destroy();
      up.destroy();
    };
    up.on('error', end);
    socket.on('error', end);
    up.on('close', end);
    socket.on('close', end);
  });
  server.listen(p.proxy, '127.0.0.1');
  proxies[i] = { server, sockets };
}

function killNode(i) {
  const child = nodes[i];
  if (!dead(child)) child.kill('SIGKILL');
  const px = proxies[i];
  if (px) {
    px.server.close();
    for (const s of px.sockets) s.destroy();
  }
  return new Promise((r) => {
    if (dead(child)) return r();
    child.once('exit', () => r());
  });
}

// -------------------------------------------------------------- api calls

function api(i, method, path, body, token) {
  return new Promise((resolveP, reject) => {
    const data = body ? JSON.stringify(body) : undefined;
    const req = https.request(
      {
        host: '127.0.0.1', port: ports(i).api, method, path, ca: caPem(), servername: 'localhost',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      },
      (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => {
          const v = s ? JSON.parse(s) : {};
          if (res.statusCode >= 400) reject(new Error(`${method} ${path}: ${res.statusCode} ${s}`));
          else resolveP(v);
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

// ------------------------------------------------------------------- main

async function setup() {
  log(`cluster under ${dir}`);
  execFileSync(join(bin, 'enclavectl'), ['ca', 'init', '--dir', ca, '--name', 'web test CA']);
  execFileSync(join(bin, 'enclavectl'), ['cert', 'issue', 'operator', '--dir', ca, '--name', 'dev-admin', '--role', 'sysadmin', '--days', '2', '--out', op]);
  execFileSync(join(bin, 'enclavectl'), ['cert', 'issue', 'node', '--dir', ca, '--name', 'proxy', '--ip', '127.0.0.1', '--dns', 'localhost', '--days', '2', '--out', join(dir, 'proxy')]);
  for (let i = 0; i < N; i++) {
    const n = join(dir, `node-${i + 1}`);
    execFileSync(join(bin, 'enclavectl'), ['cert', 'issue', 'node', '--dir', ca, '--name', `node-${i + 1}`, '--ip', '127.0.0.1', '--dns', 'localhost', '--days', '2', '--out', join(n, 'tls')]);
    try {
      execFileSync('ln', ['-sf', join(ca, 'crl.pem'), join(n, 'tls', 'crl.pem')]);
    } catch {
      /* no CRL yet */
    }
    startNode(i);
  }
  await until('node-1 admin', () => ctl(['status']));
  ctl(['cluster', 'init']);
  for (let i = 1; i < N; i++) {
    const p = ports(i);
    ctl(['cluster', 'add', '--name', `node-${i + 1}`, '--peer', `127.0.0.1:${p.peer}`, '--api', `127.0.0.1:${p.api}`, '--admin', `127.0.0.1:${p.admin}`]);
  }
  await until('all voters', () => {
    const s = JSON.parse(ctl(['cluster', 'status', '--output', 'json']));
    return s.members.filter((m) => m.voter && m.status).length === N;
  }, 120000);
  ctl(['directory', 'dept', 'put', '1', '--name', '示例集团']);
  ctl(['directory', 'dept', 'put', '2', '--name', '研发部', '--parent', '1']);
  const pw = join(dir, 'pw');
  execFileSync('sh', ['-c', `echo 'Initial-Passw0rd' > '${pw}'`]);
  for (const [u, { name }] of Object.entries(USERS)) {
    ctl(['directory', 'member', 'add', u, '--name', name, '--dept', '1', '--password-file', pw]);
  }
  for (const u of Object.keys(USERS)) {
    const t = await until(`login ${u}`, () => api(0, 'POST', '/v1/login', { userid: u, password: 'Initial-Passw0rd' }));
    await api(0, 'POST', '/v1/me/password', { old_password: 'Initial-Passw0rd', new_password: PASSWORD }, t.access_token);
  }
  for (let i = 0; i < N; i++) startProxy(i);
  // Every node has applied the users before a test starts.
  for (let i = 0; i < N; i++) await until(`node-${i + 1} login`, () => api(i, 'POST', '/v1/login', { userid: 'wangwu', password: PASSWORD }));
}

function runTest(script, artifacts) {
  return new Promise((resolveP) => {
    const child = spawn(process.execPath, [resolve(here, script), ...process.argv.slice(3).filter((a) => !a.endsWith('.mjs'))], {
      env: {
        ...process.env,
        ENCLAVE_NODES: JSON.stringify(origins()),
        ENCLAVE_USERS: JSON.stringify(USERS),
        ENCLAVE_ARTIFACTS: artifacts,
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', async (line) => {
      if (!line.startsWith('@@control ')) return console.log(line);
      const cmd = JSON.parse(line.slice('@@control '.length));
      log('control', cmd);
      if (typeof cmd.kill === 'number') {
        await killNode(cmd.kill);
        child.stdin.write('ok\n');
      } else {
        child.stdin.write('unknown command\n');
      }
    });
    child.on('exit', (code) => resolveP(code ?? 1));
  });
}

const scripts = process.argv.slice(2).filter((a) => a.endsWith('.mjs'));
if (!scripts.length) {
  console.error('usage: node web/tests/dev-harness.mjs chat.mjs [failover.mjs features.mjs a11y.mjs]');
  process.exit(2);
}
let failed = 0;
try {
  await setup();
  for (const s of scripts) {
    // Each test gets a fresh cluster state for what it kills: restart dead nodes first.
    for (let i = 0; i < N; i++) {
      if (dead(nodes[i])) {
        log(`restarting node-${i + 1}`);
        startNode(i);
        startProxy(i);
        await until(`node-${i + 1} back`, () => api(i, 'POST', '/v1/login', { userid: 'wangwu', password: PASSWORD }), 120000);
      }
    }
    const artifacts = process.env.ENCLAVE_ARTIFACTS || join(web, 'artifacts');
    log(`running ${s}`);
    const code = await runTest(s, artifacts);
    log(`${s}: ${code === 0 ? 'PASS' : 'FAIL'}`);
    if (code !== 0) failed++;
  }
} catch (e) {
  log(e.stack ?? e);
  failed++;
} finally {
  for (let i = 0; i < N; i++) await killNode(i);
  if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
}
console.log(`${scripts.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
