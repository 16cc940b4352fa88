// Attachments: zhangsan (node 0) sends lisi (node 1) a picture in a new
// 1:1 chat; lisi sees its thumbnail and opens it full size. Then a PDF
// (the card shows name and size; lisi downloads the same bytes), a 9 MiB
// one through the resumable upload (chunk progress; same bytes again), a
// refused type (the server's message is shown, the upload is discarded),
// a recalled picture turns into the tombstone for lisi, and a pasted
// picture and a dropped file arrive too.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { NODES, assert, axeCheck, log, login, newPage, openDirect, run, screenshot } from './lib.mjs';

const n = (i) => i % NODES.length;

// ------------------------------------------------------------------ bytes

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A valid w×h RGB PNG (a colour gradient). */
function png(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      raw[row + 1 + x * 3] = (x * 4) & 0xff;
      raw[row + 2 + x * 3] = (y * 5) & 0xff;
      raw[row + 3 + x * 3] = 160;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A PDF of exactly `size` bytes (a one-page document padded with a comment). */
function pdf(size) {
  const head = '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n%';
  const tail = '\ntrailer << /Root 1 0 R >>\n%%EOF\n';
  const pad = size - Buffer.byteLength(head) - Buffer.byteLength(tail);
  assert(pad >= 0, 'pdf size');
  return Buffer.concat([Buffer.from(head), Buffer.alloc(pad, 0x41), Buffer.from(tail)]);
}

const sha = (b) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------- helpers

/** Attach files through the paperclip's file input. */
async function attach(page, files) {
  await page.setInputFiles('[data-testid="attach-input"]', files);
}

/** Wait until the <img> matched has really decoded (not just an element). */
async function waitDecoded(page, selector, timeout = 30000) {
  await page.waitForFunction(
    (sel) => {
      const img = document.querySelector(sel);
      return !!img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : false;
    },
    selector,
    { timeout },
  );
  return page.$eval(selector, (img) => ({ w: img.naturalWidth, h: img.naturalHeight, src: img.getAttribute('src') }));
}

/** Click the card's download button and return the saved bytes and name. */
async function download(page, name) {
  const card = page.locator('[data-testid="attachment-file"]', { hasText: name });
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), card.locator('[data-testid="attachment-download"]').click()]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), bytes: readFileSync(path) };
}

// ---------------------------------------------------------------- scenario

run('files', async ({ browser, track }) => {
  const problems = [];
  const A = await newPage(browser);
  const B = await newPage(browser);
  const za = track(A.page);
  const lb = track(B.page);
  await login(za, n(0), 'zhangsan');
  await login(lb, n(1), 'lisi');

  // ---- a picture, in a 1:1 chat that does not exist yet.
  const picture = png(64, 48);
  await openDirect(za, 'lisi');
  await attach(za, { name: '截图.png', mimeType: 'image/png', buffer: picture });
  const mine = '[data-testid="message"][data-file-kind="image"] [data-testid="attachment-thumb"]';
  const own = await waitDecoded(za, mine);
  log(`zhangsan sees his picture (${own.w}×${own.h})`);
  assert((await za.locator('[data-testid="upload"]').count()) === 0, 'the upload row is gone once sent');

  await lb.locator('[data-testid="conversation"][data-title="张三"]').click();
  const thumb = await waitDecoded(lb, mine);
  assert(/^(blob|data):/.test(thumb.src ?? ''), `the thumbnail is shown from fetched bytes: ${thumb.src?.slice(0, 20)}`);
  // The server's thumbnail (a JPEG of at most 320 px) keeps the shape.
  assert(thumb.w * 48 === thumb.h * 64, `thumbnail ${thumb.w}×${thumb.h} keeps 4:3`);
  const preview = await lb.locator('[data-testid="conversation"][data-title="张三"] [data-testid="conversation-preview"]').textContent();
  assert(preview.includes('[图片]'), `the list previews a picture: ${preview}`);
  log(`lisi sees the thumbnail (${thumb.w}×${thumb.h})`);
  await screenshot(lb, 'files-thumbnail');

  // Opened: the full picture, with a download link.
  await lb.locator('[data-testid="attachment-image"]').first().click();
  const full = await waitDecoded(lb, '[data-testid="lightbox"] [data-testid="lightbox-image"]');
  assert(full.w === 64 && full.h === 48, `the full picture is 64×48, got ${full.w}×${full.h}`);
  const link = lb.locator('[data-testid="lightbox-download"]');
  assert((await link.getAttribute('download')) === '截图.png', 'the download link keeps the name');
  await screenshot(lb, 'files-lightbox');
  await axeCheck(lb, 'picture viewer', problems);
  await lb.keyboard.press('Escape');
  await lb.locator('[data-testid="lightbox"]').waitFor({ state: 'detached' });
  log('lisi opened the picture full size');

  // ---- a document: a card with name and size; the download is the same bytes.
  const report = pdf(3000);
  await attach(za, { name: '季度报告.pdf', mimeType: 'application/pdf', buffer: report });
  const card = lb.locator('[data-testid="attachment-file"]', { hasText: '季度报告.pdf' });
  await card.waitFor({ timeout: 30000 });
  assert((await card.locator('[data-testid="attachment-name"]').textContent()) === '季度报告.pdf', 'card name');
  assert((await card.locator('[data-testid="attachment-size"]').textContent()) === '2.9 KB', 'card size');
  const got = await download(lb, '季度报告.pdf');
  assert(got.name === '季度报告.pdf', `downloaded as ${got.name}`);
  assert(sha(got.bytes) === sha(report), 'lisi downloads the bytes zhangsan sent');
  log('lisi downloaded the document');
  await screenshot(lb, 'files-card');
  await axeCheck(lb, 'chat with attachments', problems);

  // ---- a big file goes up in chunks, with progress, and comes back whole.
  const big = pdf(9 * 1024 * 1024 + 123);
  await attach(za, { name: 'big.pdf', mimeType: 'application/pdf', buffer: big });
  const up = za.locator('[data-testid="upload"][data-name="big.pdf"]');
  // The row may be gone already on a fast machine; when seen, it counts chunks.
  try {
    await up.locator('[data-testid="upload-progress"]').waitFor({ timeout: 5000 });
    log(`upload row: ${(await up.textContent())?.replace(/\s+/g, ' ')}`);
  } catch {
    log('the big upload finished before its row was seen');
  }
  const bigCard = lb.locator('[data-testid="attachment-file"]', { hasText: 'big.pdf' });
  await bigCard.waitFor({ timeout: 120000 });
  assert((await bigCard.locator('[data-testid="attachment-size"]').textContent()) === '9 MB', 'big card size');
  const gotBig = await download(lb, 'big.pdf');
  assert(gotBig.bytes.length === big.length && sha(gotBig.bytes) === sha(big), 'the big file comes back whole');
  log('9 MiB through the resumable upload and back');

  // ---- a refused type: the server's reason is shown; discard removes the row.
  const exe = Buffer.concat([Buffer.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff, 0, 0]), Buffer.alloc(512, 1)]);
  await attach(za, { name: 'tool.exe', mimeType: 'application/octet-stream', buffer: exe });
  const bad = za.locator('[data-testid="upload"][data-name="tool.exe"][data-state="failed"]');
  await bad.waitFor({ timeout: 30000 });
  const reason = (await bad.locator('[data-testid="upload-error"]').textContent()) ?? '';
  assert(reason.startsWith('上传失败：') && reason.length > '上传失败：'.length, `the server's reason is shown: ${reason}`);
  log(`refused: ${reason}`);
  await screenshot(za, 'files-refused');
  assert((await bad.locator('[data-testid="upload-retry"]').count()) === 0, 'no retry after a refusal');
  await axeCheck(za, 'refused upload', problems);
  await bad.locator('[data-testid="upload-cancel"]').click();
  await bad.waitFor({ state: 'detached' });

  // ---- recall the picture: lisi sees the tombstone instead.
  const picRow = za.locator('[data-testid="message"][data-file-kind="image"]');
  const seq = await picRow.getAttribute('data-seq');
  await picRow.hover();
  await picRow.locator('[data-testid="recall"]').click();
  await lb.locator(`[data-testid="message-recalled"][data-seq="${seq}"]`).waitFor({ timeout: 30000 });
  assert((await lb.locator('[data-testid="message"][data-file-kind="image"]').count()) === 0, 'no picture left for lisi');
  log('the recalled picture is a tombstone for lisi');
  await screenshot(lb, 'files-after-recall');

  // ---- a pasted picture and a file dropped on the chat go the same way.
  await za.evaluate((b64) => {
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'pasted.png', { type: 'image/png' }));
    const box = document.querySelector('[data-testid="composer"]');
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, png(32, 32).toString('base64'));
  await za.evaluate((b64) => {
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'dropped.pdf', { type: 'application/pdf' }));
    const chat = document.querySelector('[data-testid="chat"]');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      chat.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }
  }, pdf(1500).toString('base64'));
  await waitDecoded(lb, '[data-testid="message"][data-file-kind="image"] [data-testid="attachment-thumb"]');
  await lb.locator('[data-testid="attachment-file"]', { hasText: 'dropped.pdf' }).waitFor({ timeout: 30000 });
  log('a pasted picture and a dropped file arrived');
  assert(!problems.length, `accessibility: ${problems.join('; ')}`);
});
