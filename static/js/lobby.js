// Live waiting room, by polling cheap JSON endpoints once a second. No inline script:
// everything this needs comes from data- attributes.
//
// The host's list is updated in place, row by row (keyed by entry id): a row that did not
// change is not touched, so keyboard focus and screen-reader position survive each poll.
// Arrivals, decisions and departures are announced through a polite live region.
(() => {
  const POLL_MS = 1000;

  const poll = (url, onData) => {
    let timer = null;
    const tick = async () => {
      clearTimeout(timer);
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) onData(await response.json());
      } catch (err) {
        // A missed poll is retried on the next tick.
      }
      timer = setTimeout(tick, POLL_MS);
    };
    timer = setTimeout(tick, POLL_MS);
    return tick; // call to poll now
  };

  const announcer = (region) => (text) => {
    if (!region || !text) return;
    const item = document.createElement("p");
    item.textContent = text;
    region.append(item);
    while (region.childElementCount > 5) region.firstElementChild.remove();
  };

  const decisionForm = (base, csrf, entry, decision, label, cls) => {
    const form = document.createElement("form");
    form.method = "post";
    form.className = "inline";
    form.action = `${base}${entry.id}/${decision}/`;
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrf;
    const b = document.createElement("button");
    b.type = "submit";
    b.textContent = label;
    b.dataset.decision = decision;
    b.setAttribute("aria-label", `${label} ${entry.display_name}`);
    if (cls) b.className = cls;
    form.append(token, b);
    return form;
  };

  const sourceText = (entry) => (entry.invited_email ? `invitation (${entry.invited_email})` : entry.source);

  const STATUS_NEWS = {
    waiting: (name) => `${name} is waiting to be let in.`,
    admitted: (name) => `${name} was admitted.`,
    denied: (name) => `${name} was denied.`,
    left: (name) => `${name} left.`,
  };

  const hostLobby = (section) => {
    const body = section.querySelector("#lobby-entries");
    const heading = document.getElementById("lobby-heading");
    const say = announcer(document.getElementById("lobby-announcer"));
    const { lobbyUrl, actionBase, csrf } = section.dataset;

    const fillDecisions = (cell, entry) => {
      const forms = [];
      if (entry.status === "waiting") {
        forms.push(decisionForm(actionBase, csrf, entry, "admit", "Admit", "primary"));
        forms.push(decisionForm(actionBase, csrf, entry, "deny", "Deny"));
      }
      if (entry.status === "waiting" || entry.status === "admitted") {
        forms.push(decisionForm(actionBase, csrf, entry, "remove", "Remove", "danger"));
      }
      cell.replaceChildren(...forms);
    };

    const newRow = (entry) => {
      const tr = document.createElement("tr");
      tr.dataset.entry = entry.id;
      for (const cls of ["name", "source", "status", "decide"]) {
        const td = document.createElement("td");
        td.className = cls;
        tr.append(td);
      }
      tr.querySelector(".name").tabIndex = -1;
      return tr;
    };

    // Where focus goes when the control holding it disappears: the same row's first
    // button, else that row's name, else the next row's first button, else the heading.
    const refocus = (row) => {
      const own = row && row.isConnected ? row.querySelector("button") || row.querySelector(".name") : null;
      const next = row && row.nextElementSibling ? row.nextElementSibling.querySelector("button") : null;
      (own || next || heading).focus();
    };

    const update = (entries) => {
      const active = document.activeElement;
      const focusRow = active && body.contains(active) ? active.closest("tr") : null;
      const seen = new Set();
      entries.forEach((entry, index) => {
        const key = String(entry.id);
        seen.add(key);
        let row = body.querySelector(`tr[data-entry="${key}"]`);
        const isNew = !row;
        if (isNew) row = newRow(entry);
        const setText = (cls, text) => {
          const cell = row.querySelector(`.${cls}`);
          if (cell.textContent !== text) cell.textContent = text; // textContent: a name is never HTML
        };
        setText("name", entry.display_name);
        setText("source", sourceText(entry));
        setText("status", entry.status);
        if (row.dataset.status !== entry.status) {
          const hadFocus = focusRow === row;
          fillDecisions(row.querySelector(".decide"), entry);
          if (!isNew) say(STATUS_NEWS[entry.status](entry.display_name));
          row.dataset.status = entry.status;
          if (hadFocus && !row.contains(document.activeElement)) refocus(row);
        }
        if (isNew) {
          const at = body.querySelectorAll("tr[data-entry]")[index] || null;
          body.insertBefore(row, at);
          say(STATUS_NEWS[entry.status](entry.display_name)); // the page was drawn without it: it is new
        }
      });
      body.querySelectorAll("tr[data-entry]").forEach((row) => {
        if (seen.has(row.dataset.entry)) return;
        const name = row.querySelector(".name").textContent;
        const hadFocus = row.contains(document.activeElement);
        const next = row.nextElementSibling;
        row.remove();
        say(`${name} is no longer in the list.`);
        if (hadFocus) ((next && next.querySelector("button")) || heading).focus();
      });
      const empty = body.querySelector("tr.empty");
      if (entries.length && empty) empty.remove();
      if (!entries.length && !empty) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = document.createElement("td");
        td.colSpan = 4;
        td.textContent = "No one yet.";
        tr.append(td);
        body.append(tr);
      }
    };

    const pollNow = poll(lobbyUrl, update);

    // Decisions without leaving the page (the forms still work without JavaScript).
    body.addEventListener("submit", async (event) => {
      const form = event.target;
      const row = form.closest("tr");
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try {
        const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
        if (!response.ok) {
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          const why = page.querySelector(".error");
          say(why ? why.textContent.trim() : "That did not work: reload the page.");
          if (button) button.disabled = false;
        }
      } catch (err) {
        say("That did not work: check your connection.");
        if (button) button.disabled = false;
      }
      await pollNow();
      if (row && !row.contains(document.activeElement) && (!document.activeElement || document.activeElement === document.body)) refocus(row);
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
      const text = state.meeting_ended ? "This meeting has ended." : MESSAGES[state.status] || "";
      if (message && message.textContent.trim() !== text) message.textContent = text;
    });
  };

  // The room's "Who is in": names only, no controls, so the list is simply re-drawn when
  // it changes; who came and went is announced.
  const people = (list) => {
    const say = announcer(document.getElementById("people-announcer"));
    let current = [...list.querySelectorAll("li[data-person]")].map((li) => li.textContent);
    poll(list.dataset.peopleUrl, (data) => {
      const names = data.people || [];
      if (names.join("\n") === current.join("\n")) return;
      const before = new Set(current);
      const after = new Set(names);
      names.filter((n) => !before.has(n)).forEach((n) => say(`${n} joined.`));
      current.filter((n) => !after.has(n)).forEach((n) => say(`${n} left.`));
      const items = names.map((n) => {
        const li = document.createElement("li");
        li.dataset.person = "";
        li.textContent = n;
        return li;
      });
      if (!items.length) {
        const li = document.createElement("li");
        li.textContent = "No one yet.";
        items.push(li);
      }
      list.replaceChildren(...items);
      current = names;
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    const lobby = document.getElementById("lobby");
    if (lobby) hostLobby(lobby);
    const waiting = document.getElementById("waiting");
    if (waiting) participant(waiting, false);
    const room = document.getElementById("room");
    if (room && room.dataset.statusUrl) participant(room, true);
    const peopleList = document.getElementById("people");
    if (peopleList && peopleList.dataset.peopleUrl) people(peopleList);
  });
})();
