// After `vite build`: write a gzip copy (`name.gz`) beside every asset that
// shrinks by at least 10%, so the node can send it to browsers that accept
// gzip without compressing at run time. Deterministic: zlib at level 9 and
// a fixed header (no file name, mtime 0), so CI's rebuild matches the
// committed files byte for byte.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, constants } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

let before = 0;
let after = 0;
for (const file of walk(dist)) {
  if (!/\.(js|css|html|svg|json)$/.test(file)) continue;
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION });
  // The OS byte of the header differs between platforms: fix it.
  gz[9] = 3;
  if (gz.length <= raw.length * 0.9) {
    writeFileSync(`${file}.gz`, gz);
    before += raw.length;
    after += gz.length;
  }
}
console.log(`precompressed: ${before} bytes -> ${after} bytes gzip`);
