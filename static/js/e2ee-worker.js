// The frame encryption of end-to-end encrypted rooms, in a worker (static/js/e2ee.js starts
// it). SFrame (RFC 9605) with the AES_128_GCM_SHA256_128 suite from WebCrypto: the RFC's
// header (key ID and counter), key and salt derivation (HKDF-SHA256, "SFrame 1.0 Secret
// key/salt" labels), nonce (salt XOR counter) and AEAD. Where the frame differs from the
// RFC, for the browser's packetiser and depacketiser (which read the codec's first bytes
// to find key frames and sizes): the first bytes of each frame stay clear (VP8: 10 on a
// key frame, 3 otherwise; Opus: 1, its TOC byte) and are authenticated, and the SFrame
// header goes at the end with one byte saying its length and the clear length:
//
//   clear prefix | ciphertext + 16-byte tag | SFrame header | (clear length << 4 | header length)
//
// Keys arrive from the page as 16-byte base keys tagged with their key ID; a frame whose
// key ID is unknown, or that does not authenticate, is dropped: nothing unencrypted or
// unauthenticated ever reaches the network or the decoder.
"use strict";

const SUITE = 0x0004; // AES_128_GCM_SHA256_128 (RFC 9605, section 4.5)
const TAG_BYTES = 16;
const encoder = new TextEncoder();

const keys = new Map(); // key ID -> Promise<{ key: CryptoKey, salt: Uint8Array }>
const counters = new Map(); // key ID -> next counter (per key: a nonce is never reused)
let sendKeyId = null;
const reports = new Map(); // transform id -> { ok, failed, keyId }

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const uint = (value, bytes) => {
  const out = new Uint8Array(bytes);
  let v = BigInt(value);
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
};

const minimalBytes = (value) => {
  let n = 1;
  while (n < 8 && BigInt(value) >= 1n << BigInt(8 * n)) n++;
  return uint(value, n);
};

// RFC 9605, section 4.3: |X|K K K|Y|C C C| then the key ID and counter bytes if long.
const encodeHeader = (keyId, counter) => {
  const kid = keyId < 8 ? null : minimalBytes(keyId);
  const ctr = counter < 8 ? null : minimalBytes(counter);
  const first =
    (kid ? 0x80 | ((kid.length - 1) << 4) : keyId << 4) | (ctr ? 0x08 | (ctr.length - 1) : counter);
  return concat(new Uint8Array([first]), kid || new Uint8Array(0), ctr || new Uint8Array(0));
};

const readUint = (bytes) => bytes.reduce((v, b) => v * 256 + b, 0);

const decodeHeader = (bytes) => {
  if (!bytes.length) return null;
  const first = bytes[0];
  let at = 1;
  let keyId = (first >> 4) & 0x07;
  if (first & 0x80) {
    const n = keyId + 1;
    keyId = readUint(bytes.subarray(at, at + n));
    at += n;
  }
  let counter = first & 0x07;
  if (first & 0x08) {
    const n = counter + 1;
    counter = readUint(bytes.subarray(at, at + n));
    at += n;
  }
  return at === bytes.length ? { keyId, counter } : null;
};

const deriveKey = async (keyId, baseKey) => {
  const ikm = await crypto.subtle.importKey("raw", baseKey, "HKDF", false, ["deriveBits"]);
  const label = (text) => concat(encoder.encode(text), uint(keyId, 8), uint(SUITE, 2));
  const hkdf = (info, bits) =>
    crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info }, ikm, bits);
  const keyBytes = await hkdf(label("SFrame 1.0 Secret key "), 128);
  const salt = new Uint8Array(await hkdf(label("SFrame 1.0 Secret salt "), 96));
  const key = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, salt };
};

const nonce = (salt, counter) => {
  const ctr = uint(counter, 12);
  return salt.map((b, i) => b ^ ctr[i]);
};

// How many leading bytes the depacketiser reads: left clear, but authenticated.
const clearBytes = (kind, frame, length) => {
  if (kind === "audio") return Math.min(1, length);
  return Math.min(frame.type === "key" ? 10 : 3, length);
};

const report = (id, field, keyId) => {
  const entry = reports.get(id) || { ok: 0, failed: 0, keyId: null };
  entry[field] += 1;
  if (keyId !== undefined) entry.keyId = keyId;
  reports.set(id, entry);
};

const encryptFrames = (kind, id) =>
  new TransformStream({
    async transform(frame, controller) {
      if (sendKeyId === null) return; // no key yet: the frame is dropped, never sent clear
      const keyId = sendKeyId;
      const { key, salt } = await keys.get(keyId);
      const counter = counters.get(keyId) || 0;
      counters.set(keyId, counter + 1);
      const data = new Uint8Array(frame.data);
      const clear = clearBytes(kind, frame, data.length);
      const header = encodeHeader(keyId, counter);
      const last = new Uint8Array([(clear << 4) | header.length]);
      const prefix = data.subarray(0, clear);
      const sealed = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv: nonce(salt, counter), additionalData: concat(prefix, header, last) },
          key,
          data.subarray(clear),
        ),
      );
      frame.data = concat(prefix, sealed, header, last).buffer;
      report(id, "ok", keyId);
      controller.enqueue(frame);
    },
  });

const decryptFrames = (kind, id) =>
  new TransformStream({
    async transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      if (data.length < TAG_BYTES + 2) return report(id, "failed");
      const last = data[data.length - 1];
      const headerLength = last & 0x0f;
      const clear = last >> 4;
      const headerAt = data.length - 1 - headerLength;
      if (!headerLength || headerAt - clear < TAG_BYTES) return report(id, "failed");
      const header = data.subarray(headerAt, data.length - 1);
      const parsed = decodeHeader(header);
      const entry = parsed && keys.get(parsed.keyId);
      if (!entry) return report(id, "failed", parsed ? parsed.keyId : undefined);
      const { key, salt } = await entry;
      const prefix = data.subarray(0, clear);
      let plain;
      try {
        plain = new Uint8Array(
          await crypto.subtle.decrypt(
            {
              name: "AES-GCM",
              iv: nonce(salt, parsed.counter),
              additionalData: concat(prefix, header, new Uint8Array([last])),
            },
            key,
            data.subarray(clear, headerAt),
          ),
        );
      } catch (_error) {
        return report(id, "failed", parsed.keyId); // tampered, or not for us: dropped
      }
      frame.data = concat(prefix, plain).buffer;
      report(id, "ok", parsed.keyId);
      controller.enqueue(frame);
    },
  });

const attach = (readable, writable, options) => {
  const { role, kind, id } = options;
  const transform = role === "sender" ? encryptFrames(kind, id) : decryptFrames(kind, id);
  readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
};

// RTCRtpScriptTransform: the browser hands each sender's or receiver's frames here.
self.onrtctransform = (event) => {
  const transformer = event.transformer;
  attach(transformer.readable, transformer.writable, transformer.options);
};

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "key") {
    if (!keys.has(message.keyId)) keys.set(message.keyId, deriveKey(message.keyId, message.baseKey));
  } else if (message.type === "send") {
    // The page posts this only once the key's wrapped copies are on their way.
    sendKeyId = message.keyId;
  } else if (message.type === "forget") {
    for (const keyId of message.keyIds) keys.delete(keyId);
  } else if (message.type === "streams") {
    // The older API (createEncodedStreams): the page transfers the streams here.
    attach(message.readable, message.writable, message.options);
  }
};

setInterval(() => {
  if (!reports.size) return;
  self.postMessage({ type: "report", reports: Object.fromEntries(reports) });
  reports.clear();
}, 500);
