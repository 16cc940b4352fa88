import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IMAGE_MAX, RESUMABLE_ABOVE, chunkRange, clock, fitBox, humanSize, kindOf, missingChunks, receivedBytes, uploadFraction,
  voiceName,
} from '../../src/logic/files.ts';

test('pictures a browser shows are sent as images, everything else as files', () => {
  assert.equal(kindOf('image/png', 10), 'image');
  assert.equal(kindOf('IMAGE/JPEG', 10), 'image');
  assert.equal(kindOf('image/webp', 10), 'image');
  assert.equal(kindOf('image/svg+xml', 10), 'file');
  assert.equal(kindOf('application/pdf', 10), 'file');
  assert.equal(kindOf('', 10), 'file');
  // The server thumbnails images up to 32 MiB: a bigger photo goes as a file.
  assert.equal(kindOf('image/jpeg', IMAGE_MAX), 'image');
  assert.equal(kindOf('image/jpeg', IMAGE_MAX + 1), 'file');
});

test('sizes read as people read them', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(812), '812 B');
  assert.equal(humanSize(1024), '1 KB');
  assert.equal(humanSize(1229), '1.2 KB');
  assert.equal(humanSize(RESUMABLE_ABOVE), '8 MB');
  assert.equal(humanSize(150 * 1024 * 1024), '150 MB');
  assert.equal(humanSize(1.5 * 1024 ** 3), '1.5 GB');
  assert.equal(humanSize(-1), '');
});

test('durations are m:ss', () => {
  assert.equal(clock(0), '0:00');
  assert.equal(clock(7400), '0:07');
  assert.equal(clock(59_600), '1:00');
  assert.equal(clock(61_000), '1:01');
});

test('chunks cover the file exactly once, the last one shorter', () => {
  const size = 10 * 1024 * 1024 + 5;
  const cs = 4 * 1024 * 1024;
  assert.deepEqual(chunkRange(size, cs, 0), { start: 0, end: cs });
  assert.deepEqual(chunkRange(size, cs, 2), { start: 2 * cs, end: size });
  assert.deepEqual(missingChunks(3, []), [0, 1, 2]);
  assert.deepEqual(missingChunks(3, [2, 0, 0]), [1]);
  assert.deepEqual(missingChunks(3, [0, 1, 2]), []);
  assert.equal(receivedBytes(size, cs, [0, 2, 2]), cs + (size - 2 * cs));
  assert.equal(receivedBytes(size, cs, [0, 1, 2]), size);
  // An index the server should not have (past the end) counts for nothing.
  assert.equal(receivedBytes(size, cs, [7]), 0);
});

test('progress stays within 0..1', () => {
  assert.equal(uploadFraction(100, 0, 0), 0);
  assert.equal(uploadFraction(100, 50, 25), 0.75);
  assert.equal(uploadFraction(100, 100, 10), 1);
  assert.equal(uploadFraction(0, 0, 0), 0);
});

test('a thumbnail box keeps the shape and never enlarges', () => {
  assert.deepEqual(fitBox(640, 480, 240), { width: 240, height: 180 });
  assert.deepEqual(fitBox(480, 640, 240), { width: 180, height: 240 });
  assert.deepEqual(fitBox(16, 12, 240), { width: 16, height: 12 });
  assert.deepEqual(fitBox(10000, 10, 240), { width: 240, height: 1 });
  assert.equal(fitBox(0, 10, 240), null);
  assert.equal(fitBox(undefined, null, 240), null);
});

test('voice notes are named by time with the recorded container', () => {
  const d = new Date(2026, 11, 3, 14, 5, 9);
  assert.equal(voiceName('audio/webm;codecs=opus', d), 'voice-20261203-140509.webm');
  assert.equal(voiceName('audio/ogg;codecs=opus', d), 'voice-20261203-140509.ogg');
  assert.equal(voiceName('audio/mp4', d), 'voice-20261203-140509.m4a');
});
