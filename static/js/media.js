// The meeting room's audio and video, with janus.js (Debian's libjs-janus-gateway, 1.1,
// multistream API). No inline script and no eval: the page hands us our join details in
// a <script type="application/json"> block, and the controls are plain buttons.
(() => {
  "use strict";

  const byId = (id) => document.getElementById(id);

  document.addEventListener("DOMContentLoaded", () => {
    const configBlock = byId("media-config");
    if (!configBlock || typeof Janus === "undefined") return;
    const config = JSON.parse(configBlock.textContent);

    const ui = {
      state: byId("media-state"),
      join: byId("media-join"),
      mute: byId("media-mute"),
      camera: byId("media-camera"),
      leave: byId("media-leave"),
      videos: byId("media-videos"),
      localVideo: byId("media-local-video"),
    };
    const say = (text) => {
      ui.state.textContent = text;
    };

    // End-to-end encrypted rooms (static/js/e2ee.js): this page encrypts what it sends and
    // decrypts what it receives, or does not join at all. Never plain media instead.
    const e2ee = Boolean(config.e2ee);
    const e2eeUi = { state: byId("media-e2ee"), code: byId("media-e2ee-code") };
    let keys = null; // the E2EE session, once joined
    if (e2ee && !(window.AntechamberE2ee && window.AntechamberE2ee.supported())) {
      ui.join.disabled = true;
      byId("media").dataset.e2ee = "unsupported";
      say(
        "This meeting is end-to-end encrypted, and this browser cannot encrypt audio and video " +
          "(it has no encoded-transform API). Join from a current version of Chrome, Edge, Firefox or " +
          "Safari. You were not connected: nothing was sent unencrypted.",
      );
      return;
    }
    const e2eeSay = (state, text) => {
      if (!e2eeUi.state) return;
      e2eeUi.state.dataset.state = state;
      e2eeUi.state.textContent = text;
    };

    let janus = null;
    let publisher = null;
    let subscriber = null;
    let subscriberJoined = false;
    let privateId = null;
    const pending = []; // streams to subscribe to once the subscriber has joined
    const feeds = new Map(); // publisher ID -> { tile, stream }
    const midToFeed = new Map();

    const setJoined = (joined) => {
      ui.join.disabled = joined;
      ui.mute.disabled = !joined;
      ui.camera.disabled = !joined;
      ui.leave.disabled = !joined;
    };

    const tileFor = (feedId, display) => {
      let entry = feeds.get(feedId);
      if (!entry) {
        const tile = document.createElement("figure");
        tile.className = "media-tile remote";
        tile.dataset.feed = String(feedId);
        const video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        const caption = document.createElement("figcaption");
        caption.textContent = display || "Participant"; // textContent: a name is never HTML
        tile.append(video, caption);
        ui.videos.append(tile);
        entry = { tile, video, stream: new MediaStream() };
        video.srcObject = entry.stream;
        feeds.set(feedId, entry);
      }
      return entry;
    };

    // "End-to-end encrypted" only while every stream received decrypts.
    const showDecryption = () => {
      if (!keys) return;
      const shown = [...feeds.keys()];
      if (!shown.length) {
        e2eeSay("waiting", "End-to-end encryption is on. No one else's audio or video yet.");
        return;
      }
      let all = true;
      for (const feedId of shown) {
        const ok = keys.decrypting([...midToFeed].filter(([, f]) => f === feedId).map(([mid]) => mid));
        feeds.get(feedId).tile.dataset.e2ee = ok ? "decrypting" : "not-decrypting";
        all = all && ok;
      }
      if (all) e2eeSay("encrypted", "End-to-end encrypted");
      else e2eeSay("not-decrypting", "Not every participant's audio and video can be decrypted yet.");
    };

    const dropFeed = (feedId) => {
      const entry = feeds.get(feedId);
      if (entry) {
        entry.tile.remove();
        feeds.delete(feedId);
      }
      if (subscriber && subscriberJoined) {
        subscriber.send({ message: { request: "unsubscribe", streams: [{ feed: feedId }] } });
      }
    };

    const subscribeTo = (publishers) => {
      const streams = [];
      for (const p of publishers || []) {
        if (p.id === config.feed || feeds.has(p.id)) continue;
        tileFor(p.id, p.display);
        for (const s of p.streams || []) {
          if (!s.disabled) streams.push({ feed: p.id, mid: s.mid });
        }
      }
      if (!streams.length) return;
      if (!subscriber) {
        pending.push(...streams);
        attachSubscriber();
      } else if (!subscriberJoined) {
        pending.push(...streams);
      } else {
        subscriber.send({ message: { request: "subscribe", streams } });
      }
    };

    const attachSubscriber = () => {
      subscriber = true; // claimed: a second publisher event waits in `pending`
      janus.attach({
        plugin: "janus.plugin.videoroom",
        success: (handle) => {
          subscriber = handle;
          const streams = pending.splice(0);
          // require_pvtid: the room only lets us watch as the publisher we joined as.
          handle.send({
            message: {
              request: "join",
              ptype: "subscriber",
              room: config.room,
              pin: config.pin,
              token: config.token,
              private_id: privateId,
              streams,
            },
          });
        },
        error: (err) => say(`Could not receive the others' audio and video: ${err}`),
        onmessage: (msg, jsep) => {
          if (msg.error) {
            say(`Media server: ${msg.error}`);
            return;
          }
          if (msg.videoroom === "attached") {
            subscriberJoined = true;
            if (pending.length) subscriber.send({ message: { request: "subscribe", streams: pending.splice(0) } });
          }
          for (const s of msg.streams || []) {
            if (s.feed_id !== undefined) midToFeed.set(s.mid, s.feed_id);
          }
          if (jsep) {
            subscriber.createAnswer({
              jsep,
              tracks: [{ type: "data" }], // receive only: we send nothing on this connection
              success: (answer) => {
                if (keys) keys.protectReceivers(subscriber.webrtcStuff.pc);
                subscriber.send({ message: { request: "start", room: config.room }, jsep: answer });
              },
              error: (err) => say(`Could not receive the others' audio and video: ${err.message || err}`),
            });
          }
        },
        onremotetrack: (track, mid, on) => {
          const feedId = midToFeed.get(mid);
          const entry = feedId === undefined ? null : feeds.get(feedId);
          if (!entry) return;
          if (keys) keys.protectReceivers(subscriber.webrtcStuff.pc);
          if (on) {
            entry.stream.getTracks().filter((t) => t.kind === track.kind).forEach((t) => entry.stream.removeTrack(t));
            entry.stream.addTrack(track);
            entry.video.srcObject = entry.stream;
            entry.video.play().catch(() => {});
          } else {
            entry.stream.getTracks().filter((t) => t.id === track.id).forEach((t) => entry.stream.removeTrack(t));
          }
        },
      });
    };

    const publish = () => {
      publisher.createOffer({
        tracks: [
          { type: "audio", capture: true, recv: false },
          { type: "video", capture: true, recv: false },
        ],
        success: (jsep) => {
          if (keys) {
            // SECURITY: every sender gets its encrypting transform before the offer leaves,
            // and the offer says so (the room refuses publishers that do not).
            try {
              keys.protectSenders(publisher.webrtcStuff.pc);
            } catch (err) {
              leave(`Could not encrypt audio and video, so nothing was sent: ${err.message || err}`);
              return;
            }
            jsep = { type: jsep.type, sdp: jsep.sdp, e2ee: true };
            keys.watchSenders(publisher.webrtcStuff.pc, (kind) =>
              leave(`Stopped: this browser sent ${kind} without encrypting it. Use another browser.`),
            );
          }
          publisher.send({ message: { request: "configure", audio: true, video: true }, jsep });
        },
        error: (err) => say(`Could not use the camera or microphone: ${err.message || err}`),
      });
    };

    const leave = (why) => {
      setJoined(false);
      ui.join.disabled = true; // a page reload joins again, if the host still lets us
      if (ui.localVideo.srcObject) ui.localVideo.srcObject.getTracks().forEach((t) => t.stop());
      ui.localVideo.srcObject = null;
      for (const feedId of [...feeds.keys()]) {
        feeds.get(feedId).tile.remove();
        feeds.delete(feedId);
      }
      if (janus) janus.destroy({ cleanupHandles: true });
      janus = null;
      if (keys) {
        keys.stop();
        keys = null;
        e2eeSay("off", "End-to-end encryption: not connected.");
      }
      say(why);
    };

    const attachPublisher = () => {
      janus.attach({
        plugin: "janus.plugin.videoroom",
        success: (handle) => {
          publisher = handle;
          handle.send({
            message: {
              request: "join",
              ptype: "publisher",
              room: config.room,
              pin: config.pin,
              token: config.token,
              id: config.feed,
              display: config.display,
            },
          });
        },
        error: (err) => say(`Could not reach the media server: ${err}`),
        onmessage: (msg, jsep) => {
          if (msg.error) {
            say(`Media server refused: ${msg.error}`);
            return;
          }
          const event = msg.videoroom;
          if (event === "joined") {
            privateId = msg.private_id;
            setJoined(true);
            say("Audio and video: joined.");
            publish();
            subscribeTo(msg.publishers);
          } else if (event === "destroyed") {
            leave("The meeting's media room was closed (or changed, e.g. to end-to-end encryption): reload the page to join again if the meeting goes on.");
            return;
          } else if (event === "event") {
            if (msg.publishers) subscribeTo(msg.publishers);
            if (msg.unpublished !== undefined && msg.unpublished !== "ok") dropFeed(msg.unpublished);
            if (msg.leaving !== undefined && msg.leaving !== "ok") dropFeed(msg.leaving);
            // Someone else was removed by the host: their tile goes (and with it their streams).
            if (msg.kicked !== undefined) dropFeed(msg.kicked);
            if (msg.leaving === "ok" && msg.reason === "kicked") {
              leave("The host removed you from the audio and video.");
              return;
            }
          }
          if (jsep) publisher.handleRemoteJsep({ jsep });
        },
        onlocaltrack: (track, on) => {
          // SECURITY: janus.js has just added this track's sender, and the offer is not made
          // yet: its encrypting transform goes on now (Chromium loses a sender transform set
          // between the offer and the answer, and would send those frames unencrypted).
          if (keys && on) keys.protectSenders(publisher.webrtcStuff.pc);
          if (track.kind !== "video") return;
          ui.localVideo.srcObject = on ? new MediaStream([track]) : null;
        },
      });
    };

    const connect = () =>
      Janus.init({
        debug: false,
        dependencies: Janus.useDefaultDependencies(),
        callback: () => {
          if (!Janus.isWebrtcSupported()) {
            say("This browser cannot do audio and video calls.");
            return;
          }
          const session = new Janus({
            server: config.server,
            iceServers: config.iceServers, // [] unless the operator configured STUN or TURN
            success: attachPublisher,
            // A session this page has already left (the encryption watchdog, a removal) can
            // still fail its last long polls while janus.js destroys it: that must not
            // overwrite the reason the page left with "Lost the media server".
            error: (err) => {
              if (janus === session) leave(`Lost the media server: ${err}`);
            },
          });
          janus = session;
        },
      });

    ui.join.addEventListener("click", () => {
      ui.join.disabled = true;
      say("Audio and video: connecting…");
      if (!e2ee) {
        connect();
        return;
      }
      e2eeSay("starting", "End-to-end encryption: making this browser's keys…");
      keys = window.AntechamberE2ee.start(config, byId("media").dataset.e2eeWorker, {
        onCode: (code, people) => {
          if (!e2eeUi.code) return;
          e2eeUi.code.dataset.code = code;
          e2eeUi.code.textContent = `Security code: ${code} (${people} ${people === 1 ? "person" : "people"})`;
        },
        onProblem: (text) => e2eeSay("problem", text),
        onSendKey: (keyId) => {
          if (e2eeUi.state) e2eeUi.state.dataset.sendKeyId = String(keyId);
        },
        onReport: showDecryption,
      });
      keys.ready.then(
        () => {
          showDecryption();
          connect();
        },
        (err) => leave(`End-to-end encryption could not start, so you were not connected: ${err.message || err}`),
      );
    });

    ui.mute.addEventListener("click", () => {
      if (!publisher) return;
      if (publisher.isAudioMuted()) publisher.unmuteAudio();
      else publisher.muteAudio();
      ui.mute.textContent = publisher.isAudioMuted() ? "Unmute" : "Mute";
    });

    ui.camera.addEventListener("click", () => {
      if (!publisher) return;
      if (publisher.isVideoMuted()) publisher.unmuteVideo();
      else publisher.muteVideo();
      ui.camera.textContent = publisher.isVideoMuted() ? "Camera on" : "Camera off";
    });

    ui.leave.addEventListener("click", () => leave("Audio and video: left. Reload the page to join again."));
  });
})();
