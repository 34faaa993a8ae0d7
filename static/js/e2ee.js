// End-to-end encrypted rooms, on the page: this browser's key pair, the sender keys, the
// key relay (Antechamber, which only ever sees public keys and wrapped keys) and the
// security code. Frames are encrypted and decrypted in static/js/e2ee-worker.js.
//
// - Joining: an ECDH P-256 key pair (private half non-extractable); the public half is
//   published to this seat's relay URL.
// - Sending: a random 16-byte base key per generation, with a key ID (a random 24-bit
//   prefix for this page, then the generation), wrapped for each member: ECDH with their
//   public key -> HKDF-SHA256 (info names the key's sender and recipient) -> AES-GCM.
//   A new generation whenever anyone joins or leaves (or is removed), so a newcomer cannot
//   read what came before and a leaver cannot read what follows. The worker switches to
//   it once its wrapped copies are posted and the others have had time to fetch them.
// - Receiving: the relay is polled; each wrapped key is unwrapped with the sender's
//   public key and handed to the worker, which finds it again by the frame's key ID.
// - Security code: SHA-256 of everyone's public keys, sorted; six groups of five digits.
//   Read aloud, it shows whether everyone was given the same keys (docs/SECURITY.md).
(() => {
  "use strict";

  const POLL_MS = 1000;
  const SWITCH_DELAY_MS = 1500; // two polls: the others have the new key before it is used
  const LEAK_MS = 3000; // sending with no frame encrypted for this long: stop
  const encoder = new TextEncoder();

  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const uint64 = (value) => {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(value));
    return out;
  };
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };

  // Which encoded-transform API this browser has, if any.
  const transformApi = () => {
    if (typeof window.RTCRtpScriptTransform === "function") return "script";
    if (window.RTCRtpSender && typeof RTCRtpSender.prototype.createEncodedStreams === "function") return "streams";
    return null;
  };

  const supported = () => Boolean(transformApi() && window.crypto && crypto.subtle && window.Worker);

  // The older API needs every peer connection made with encodedInsertableStreams; janus.js
  // asks for it only for tracks it transforms itself, so it is asked for here.
  const requireInsertableStreams = () => {
    const Original = window.RTCPeerConnection;
    if (Original.__antechamberE2ee) return;
    const Wrapped = function (config, ...rest) {
      return new Original({ ...(config || {}), encodedInsertableStreams: true }, ...rest);
    };
    Wrapped.prototype = Original.prototype;
    Object.setPrototypeOf(Wrapped, Original);
    Wrapped.__antechamberE2ee = true;
    window.RTCPeerConnection = Wrapped;
  };

  const securityCode = async (publicKeys) => {
    const sorted = [...publicKeys].sort();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(sorted.join("\n"))));
    const groups = [];
    for (let i = 0; i < 6; i++) {
      const chunk = digest.subarray(i * 5, i * 5 + 5).reduce((v, b) => v * 256 + b, 0);
      groups.push(String(chunk % 100000).padStart(5, "0"));
    }
    return groups.join(" ");
  };

  const start = (config, workerUrl, hooks) => {
    const api = transformApi();
    if (api === "streams") requireInsertableStreams();
    const worker = new Worker(workerUrl);
    const keyPrefix = crypto.getRandomValues(new Uint32Array(1))[0] & 0xffffff;
    let generation = 0;
    let myKeys = null; // { privateKey, publicKey (base64) }
    let lastMembers = null; // "feed:key" of the others, sorted: a change means a new sender key
    let lastCode = null;
    let pollTimer = null;
    let watchTimer = null;
    let stopped = false;
    const publicKeys = new Map(); // feed -> { text, key: CryptoKey }
    const unwrapped = new Set(); // "feed:keyId"
    const protectedEnds = new WeakSet(); // senders and receivers given a transform
    const transforms = new Map(); // transform id -> { role, kind, mid, lastOk, failing }
    let nextTransformId = 1;

    const relay = async (method, body) => {
      const response = await fetch(config.keysUrl, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        keepalive: method === "DELETE",
        headers: body ? { "Content-Type": "application/json", "X-CSRFToken": config.csrf } : { "X-CSRFToken": config.csrf },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!response.ok) throw new Error(`key relay answered ${response.status}`);
      return response.json();
    };

    const wrapKeyFor = async (fromFeed, toFeed, theirPublic) => {
      const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: theirPublic }, myKeys.privateKey, 256);
      const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
      const info = concat(encoder.encode("Antechamber E2EE key wrap v1"), uint64(fromFeed), uint64(toFeed));
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info },
        ikm,
        { name: "AES-GCM", length: 128 },
        false,
        ["encrypt", "decrypt"],
      );
    };

    const newSenderKey = async (others) => {
      generation += 1;
      const keyId = keyPrefix * 65536 + generation;
      const baseKey = crypto.getRandomValues(new Uint8Array(16));
      const keys = [];
      for (const [feed, entry] of others) {
        const wrapping = await wrapKeyFor(config.feed, feed, entry.key);
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const wrapped = await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: uint64(keyId) },
          wrapping,
          baseKey,
        );
        keys.push({ to: feed, iv: b64(iv), wrapped: b64(wrapped) });
      }
      worker.postMessage({ type: "key", keyId, baseKey: baseKey.buffer }, [baseKey.buffer]);
      if (keys.length) await relay("POST", { key_id: keyId, keys });
      const first = generation === 1;
      setTimeout(
        () => {
          if (stopped) return;
          worker.postMessage({ type: "send", keyId });
          hooks.onSendKey(keyId); // key IDs are public: every frame carries one
        },
        first ? 0 : SWITCH_DELAY_MS,
      );
    };

    const importPublic = async (feed, text) => {
      const known = publicKeys.get(feed);
      if (known && known.text === text) return known;
      const key = await crypto.subtle.importKey("raw", unb64(text), { name: "ECDH", namedCurve: "P-256" }, false, []);
      const entry = { text, key };
      publicKeys.set(feed, entry);
      return entry;
    };

    const poll = async () => {
      let state = await relay("GET");
      if (!state.members.some((m) => m.feed === config.feed)) {
        // Our public key lapsed (a throttled tab stops polling): publish it again.
        await relay("POST", { public_key: myKeys.publicKey });
        state = await relay("GET");
      }
      const others = new Map();
      const everyone = [];
      for (const member of state.members) {
        everyone.push(member.public_key);
        if (member.feed === config.feed) continue;
        others.set(member.feed, await importPublic(member.feed, member.public_key));
      }
      for (const feed of [...publicKeys.keys()]) if (!others.has(feed)) publicKeys.delete(feed);
      const code = await securityCode(everyone);
      if (code !== lastCode) {
        lastCode = code;
        hooks.onCode(code, state.members.length);
      }
      const signature = [...others].map(([feed, e]) => `${feed}:${e.text}`).sort().join(",");
      if (signature !== lastMembers) {
        lastMembers = signature;
        await newSenderKey(others);
      }
      for (const item of state.wrapped) {
        const tag = `${item.from}:${item.key_id}`;
        const sender = others.get(item.from);
        if (unwrapped.has(tag) || !sender) continue;
        try {
          const wrapping = await wrapKeyFor(item.from, config.feed, sender.key);
          const baseKey = await crypto.subtle.decrypt(
            { name: "AES-GCM", iv: unb64(item.iv), additionalData: uint64(item.key_id) },
            wrapping,
            unb64(item.wrapped),
          );
          worker.postMessage({ type: "key", keyId: item.key_id, baseKey }, [baseKey]);
          unwrapped.add(tag);
        } catch (_error) {
          hooks.onProblem("A key could not be unwrapped: it was not made for this browser's key.");
        }
      }
    };

    const loop = async () => {
      if (stopped) return;
      try {
        await poll();
      } catch (error) {
        hooks.onProblem(`End-to-end keys: ${error.message || error}`);
      }
      if (!stopped) pollTimer = setTimeout(loop, POLL_MS);
    };

    worker.onmessage = (event) => {
      if (event.data.type !== "report") return;
      const now = performance.now();
      for (const [id, counts] of Object.entries(event.data.reports)) {
        const entry = transforms.get(Number(id));
        if (!entry) continue;
        if (counts.ok) entry.lastOk = now;
        // Any frame that did not decrypt in this report: the stream is failing until one
        // decrypts again in a report of its own.
        entry.failing = counts.failed > 0;
      }
      hooks.onReport();
    };

    const protect = (target, role, kind, mid) => {
      const id = nextTransformId++;
      transforms.set(id, { role, kind, mid, lastOk: 0, failing: false });
      const options = { role, kind, id };
      if (api === "script") {
        target.transform = new RTCRtpScriptTransform(worker, options);
      } else {
        const { readable, writable } = target.createEncodedStreams();
        worker.postMessage({ type: "streams", readable, writable, options }, [readable, writable]);
      }
    };

    const ready = (async () => {
      const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
      const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
      myKeys = { privateKey: pair.privateKey, publicKey: b64(raw) };
      await relay("POST", { public_key: myKeys.publicKey });
      await poll();
      pollTimer = setTimeout(loop, POLL_MS);
    })();

    return {
      ready,
      // Every sender of this connection, before the offer goes out: no frame leaves unencrypted.
      protectSenders(pc) {
        for (const sender of pc.getSenders()) {
          if (sender.track && !protectedEnds.has(sender)) {
            protect(sender, "sender", sender.track.kind);
            protectedEnds.add(sender);
          }
        }
      },
      // Every receiver not yet protected (new subscriptions add transceivers).
      protectReceivers(pc) {
        for (const transceiver of pc.getTransceivers()) {
          const receiver = transceiver.receiver;
          if (!receiver || protectedEnds.has(receiver) || !receiver.track || receiver.track.kind === "data") continue;
          protect(receiver, "receiver", receiver.track.kind, transceiver.mid);
          protectedEnds.add(receiver);
        }
      },
      // SECURITY: a safety net under protectSenders. If this connection sends packets while
      // no sender transform has encrypted a frame for a few seconds, some browser path is
      // sending around the transform: onLeak stops everything.
      watchSenders(pc, onLeak) {
        const sent = {};
        const since = {};
        watchTimer = setInterval(async () => {
          if (stopped) return;
          const now = performance.now();
          const stats = await pc.getStats();
          stats.forEach((s) => {
            if (s.type !== "outbound-rtp" || !s.kind) return;
            const packets = s.packetsSent || 0;
            const grew = packets > (sent[s.kind] || 0);
            sent[s.kind] = packets;
            if (!grew) return;
            since[s.kind] = since[s.kind] || now;
            const ends = [...transforms.values()].filter((t) => t.role === "sender" && t.kind === s.kind);
            const lastOk = Math.max(0, ...ends.map((t) => t.lastOk));
            if (now - Math.max(lastOk, since[s.kind]) > LEAK_MS) onLeak(s.kind);
          });
        }, 1000);
      },
      // Whether every stream received from these mids decrypts now.
      decrypting(mids) {
        const wanted = new Set(mids);
        const streams = [...transforms.values()].filter((t) => t.role === "receiver" && wanted.has(t.mid));
        if (!streams.length || streams.length < wanted.size) return false;
        // A stream with no frames lately (a muted sender) still counts: it did not fail.
        return streams.every((t) => t.lastOk > 0 && !t.failing);
      },
      stop() {
        if (stopped) return;
        stopped = true;
        clearTimeout(pollTimer);
        clearInterval(watchTimer);
        relay("DELETE").catch(() => {});
        worker.terminate();
      },
    };
  };

  window.AntechamberE2ee = { supported, start, transformApi };
})();
