// Live waiting room, by polling cheap JSON endpoints once a second. No inline script:
// everything this needs comes from data- attributes.
(() => {
  const POLL_MS = 1000;

  const poll = (url, onData) => {
    const tick = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) onData(await response.json());
      } catch (err) {
        // A missed poll is retried on the next tick.
      }
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  };

  const button = (label, cls) => {
    const b = document.createElement("button");
    b.type = "submit";
    b.textContent = label;
    if (cls) b.className = cls;
    return b;
  };

  const decisionForm = (base, csrf, entryId, decision, label, cls) => {
    const form = document.createElement("form");
    form.method = "post";
    form.className = "inline";
    form.action = `${base}${entryId}/${decision}/`;
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrf;
    form.append(token, button(label, cls));
    return form;
  };

  const hostLobby = (section) => {
    const body = section.querySelector("#lobby-entries");
    const { lobbyUrl, actionBase, csrf } = section.dataset;
    poll(lobbyUrl, (entries) => {
      const rows = entries.map((entry) => {
        const tr = document.createElement("tr");
        tr.dataset.entry = entry.id;
        for (const [cls, text] of [["name", entry.display_name], ["source", entry.invited_email ? `invitation (${entry.invited_email})` : entry.source], ["status", entry.status]]) {
          const td = document.createElement("td");
          td.className = cls;
          td.textContent = text; // textContent: a display name is never HTML
          tr.append(td);
        }
        const decide = document.createElement("td");
        decide.className = "decide";
        if (entry.status === "waiting") {
          decide.append(decisionForm(actionBase, csrf, entry.id, "admit", "Admit", "primary"));
          decide.append(decisionForm(actionBase, csrf, entry.id, "deny", "Deny"));
        }
        if (entry.status === "waiting" || entry.status === "admitted") {
          decide.append(decisionForm(actionBase, csrf, entry.id, "remove", "Remove", "danger"));
        }
        tr.append(decide);
        return tr;
      });
      if (!rows.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = document.createElement("td");
        td.colSpan = 4;
        td.textContent = "No one yet.";
        tr.append(td);
        rows.push(tr);
      }
      body.replaceChildren(...rows);
    });
  };

  const MESSAGES = {
    waiting: "Please wait: the host will let you in.",
    admitted: "The host admitted you. Waiting for the host to start the meeting…",
    denied: "The host did not let you in.",
    left: "You have left this meeting.",
  };

  const participant = (section, inRoom) => {
    const message = document.getElementById("waiting-message");
    poll(section.dataset.statusUrl, (state) => {
      if (!inRoom && state.room_url) {
        window.location.assign(state.room_url);
        return;
      }
      if (inRoom && !state.room_url) {
        window.location.reload(); // the server sends us back to the waiting page
        return;
      }
      if (message) message.textContent = state.meeting_ended ? "This meeting has ended." : MESSAGES[state.status] || "";
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    const lobby = document.getElementById("lobby");
    if (lobby) hostLobby(lobby);
    const waiting = document.getElementById("waiting");
    if (waiting) participant(waiting, false);
    const room = document.getElementById("room");
    if (room) participant(room, true);
  });
})();
