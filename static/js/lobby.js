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

  const decisionForm = (base, csrf, back, entry, decision, label, cls) => {
    const form = document.createElement("form");
    form.method = "post";
    form.className = "inline";
    form.action = `${base}${entry.id}/${decision}/`;
    const hidden = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    };
    hidden("csrfmiddlewaretoken", csrf);
    if (back) hidden("back", back);
    const b = document.createElement("button");
    b.type = "submit";
    b.textContent = label;
    b.dataset.decision = decision;
    b.setAttribute("aria-label", `${label} ${entry.display_name}`);
    if (cls) b.className = cls;
    form.append(b);
    return form;
  };

  const sourceText = (entry) => (entry.invited_email ? `invitation (${entry.invited_email})` : entry.source);

  const STATUS_NEWS = {
    waiting: (name) => `${name} is waiting to be let in.`,
    admitted: (name) => `${name} was admitted.`,
    denied: (name) => `${name} was denied.`,
    left: (name) => `${name} left.`,
  };

  // Posts one of the host's forms without leaving the page; true if it worked. A refusal
  // (the server's page) or a lost connection is announced instead.
  const send = async (form, say) => {
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      if (response.ok) return true;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const why = page.querySelector(".error");
      say(why ? why.textContent.trim() : "That did not work: reload the page.");
    } catch (err) {
      say("That did not work: check your connection.");
    }
    if (button) button.disabled = false;
    return false;
  };

  // The host's live list of lobby entries (the lobby's table, or the room's list), updated
  // in place row by row (keyed by entry id), each row with its decisions as plain forms.
  //   body: the <tbody> or <ul> holding the rows; rows are [data-entry] elements
  //   url, entriesOf(data), onData(data): what to poll and what of it is the list
  //   cells: the cells of a new row, by class; statusText(entry): the status cell's text
  //   emptyText: the row shown when the list is empty (none if not given)
  const liveEntries = (body, options) => {
    const { url, heading, say, cells, emptyText } = options;
    const entriesOf = options.entriesOf || ((data) => data);
    const statusText = options.statusText || ((entry) => entry.status);
    const { actionBase, csrf, back } = options;
    const inTable = body.tagName === "TBODY";
    const rows = () => body.querySelectorAll("[data-entry]");

    const fillDecisions = (cell, entry) => {
      const forms = [];
      if (entry.status === "waiting") {
        forms.push(decisionForm(actionBase, csrf, back, entry, "admit", "Admit", "primary"));
        forms.push(decisionForm(actionBase, csrf, back, entry, "deny", "Deny"));
      }
      if (entry.status === "waiting" || entry.status === "admitted") {
        forms.push(decisionForm(actionBase, csrf, back, entry, "remove", "Remove", "danger"));
      }
      cell.replaceChildren(...forms);
    };

    const newRow = (entry) => {
      const row = document.createElement(inTable ? "tr" : "li");
      row.dataset.entry = entry.id;
      for (const cls of cells) {
        const cell = document.createElement(inTable ? "td" : "span");
        cell.className = cls;
        if (!inTable && row.childElementCount) row.append(" ");
        row.append(cell);
      }
      row.querySelector(".name").tabIndex = -1;
      return row;
    };

    // Where focus goes when the control holding it disappears: the same row's first
    // button, else that row's name, else the next row's first button, else the heading.
    // `after`: the row that followed, for a row already taken out of the list.
    const refocus = (row, after = null) => {
      const connected = row && row.isConnected;
      const own = connected ? row.querySelector("button") || row.querySelector(".name") : null;
      const nextRow = connected ? row.nextElementSibling : after && after.isConnected ? after : null;
      const next = nextRow ? nextRow.querySelector("button") : null;
      (own || next || heading).focus();
    };

    const update = (entries) => {
      const active = document.activeElement;
      const focusRow = active && body.contains(active) ? active.closest("[data-entry]") : null;
      const seen = new Set();
      entries.forEach((entry, index) => {
        const key = String(entry.id);
        seen.add(key);
        let row = body.querySelector(`[data-entry="${key}"]`);
        const isNew = !row;
        if (isNew) row = newRow(entry);
        const setText = (cls, text) => {
          const cell = row.querySelector(`.${cls}`);
          if (cell && cell.textContent !== text) cell.textContent = text; // textContent: a name is never HTML
        };
        setText("name", entry.display_name);
        setText("source", sourceText(entry));
        setText("status", statusText(entry));
        if (row.dataset.status !== entry.status) {
          const hadFocus = focusRow === row;
          fillDecisions(row.querySelector(".decide"), entry);
          if (!isNew) say(STATUS_NEWS[entry.status](entry.display_name));
          row.dataset.status = entry.status;
          if (hadFocus && !row.contains(document.activeElement)) refocus(row);
        }
        if (isNew) {
          const at = rows()[index] || null;
          body.insertBefore(row, at);
          say(STATUS_NEWS[entry.status](entry.display_name)); // the page was drawn without it: it is new
        }
      });
      rows().forEach((row) => {
        if (seen.has(row.dataset.entry)) return;
        const name = row.querySelector(".name").textContent;
        const hadFocus = row.contains(document.activeElement);
        const next = row.nextElementSibling;
        row.remove();
        say(`${name} is no longer in the list.`);
        if (hadFocus) ((next && next.querySelector("button")) || heading).focus();
      });
      if (!emptyText) return;
      const empty = body.querySelector(".empty");
      if (entries.length && empty) empty.remove();
      if (!entries.length && !empty) {
        const row = document.createElement(inTable ? "tr" : "li");
        row.className = "empty";
        const cell = document.createElement(inTable ? "td" : "span");
        if (inTable) cell.colSpan = cells.length;
        cell.textContent = emptyText;
        row.append(cell);
        body.append(row);
      }
    };

    const pollNow = poll(url, (data) => {
      update(entriesOf(data));
      if (options.onData) options.onData(data);
    });

    // Decisions without leaving the page (the forms still work without JavaScript).
    body.addEventListener("submit", async (event) => {
      const form = event.target;
      const row = form.closest("[data-entry]");
      const after = row ? row.nextElementSibling : null;
      event.preventDefault();
      await send(form, say);
      await pollNow();
      if (row && !row.contains(document.activeElement) && (!document.activeElement || document.activeElement === document.body)) refocus(row, after);
    });
    return pollNow;
  };

  const hostLobby = (section) => {
    const { lobbyUrl, actionBase, csrf } = section.dataset;
    liveEntries(section.querySelector("#lobby-entries"), {
      url: lobbyUrl,
      actionBase,
      csrf,
      heading: document.getElementById("lobby-heading"),
      say: announcer(document.getElementById("lobby-announcer")),
      cells: ["name", "source", "status", "decide"],
      emptyText: "No one yet.",
    });
  };

  const ROOM_STATUS = { waiting: "waiting to come in", admitted: "in the room" };
  const LOCK_NEWS = {
    true: "The meeting is locked: no one new can join.",
    false: "The meeting is unlocked: people can ask to join.",
  };

  // The host's room: the same live rows as the lobby (people in, people waiting), and Lock /
  // Unlock sent without a reload so the call goes on. End is a plain form: it leaves the room.
  const hostRoom = (list) => {
    const say = announcer(document.getElementById("people-announcer"));
    const state = document.getElementById("room-state");
    const lockForms = document.querySelectorAll("form[data-room-lock]");
    const shownButton = () => [...lockForms].find((form) => !form.hidden).querySelector("button");
    const showLock = (locked) => {
      const shown = locked ? "unlock" : "lock";
      const current = [...lockForms].find((form) => !form.hidden);
      if (current && current.dataset.roomLock === shown) return;
      const hadFocus = current && current.contains(document.activeElement);
      lockForms.forEach((form) => { form.hidden = form.dataset.roomLock !== shown; });
      if (state) state.textContent = locked ? "Locked: no one new can join." : "Open: people can ask to join.";
      say(LOCK_NEWS[locked]);
      if (hadFocus) shownButton().focus();
    };
    const { peopleUrl, actionBase, csrf, back } = list.dataset;
    const pollNow = liveEntries(list, {
      url: peopleUrl,
      actionBase,
      csrf,
      back,
      heading: document.getElementById("people-heading"),
      say,
      cells: ["name", "status", "decide"],
      entriesOf: (data) => data.entries || [],
      statusText: (entry) => ROOM_STATUS[entry.status] || entry.status,
      onData: (data) => showLock(Boolean(data.locked)),
    });
    lockForms.forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const hadFocus = form.contains(document.activeElement);
        await send(form, say);
        await pollNow();
        lockForms.forEach((each) => { each.querySelector("button").disabled = false; });
        const lost = !document.activeElement || document.activeElement === document.body;
        if (hadFocus && lost) shownButton().focus();
      });
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

  // A participant's "Who is in": names only, no controls, so the list is simply re-drawn
  // when it changes; who came and went is announced. (The host's is hostRoom's.) A badge
  // comes from the role the server sends, never from the name (which anyone can type).
  const personKey = (p) => `${p.role}\n${p.name}`;
  const personSaid = (p) => (p.role_label ? `${p.name} (${p.role_label})` : p.name);
  const people = (list) => {
    const say = announcer(document.getElementById("people-announcer"));
    let current = [...list.querySelectorAll("li[data-person]")].map((li) => ({
      name: li.querySelector(".name").textContent,
      role: li.dataset.role,
      role_label: (li.querySelector(".role-badge") || {}).textContent || "",
    }));
    poll(list.dataset.peopleUrl, (data) => {
      const everyone = data.people || [];
      if (everyone.map(personKey).join("\n") === current.map(personKey).join("\n")) return;
      const before = new Set(current.map(personKey));
      const after = new Set(everyone.map(personKey));
      everyone.filter((p) => !before.has(personKey(p))).forEach((p) => say(`${personSaid(p)} joined.`));
      current.filter((p) => !after.has(personKey(p))).forEach((p) => say(`${personSaid(p)} left.`));
      const items = everyone.map((p) => {
        const li = document.createElement("li");
        li.dataset.person = "";
        li.dataset.role = p.role;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = p.name; // textContent: a name is never HTML
        li.append(name);
        if (p.role_label) {
          const badge = document.createElement("span");
          badge.className = "role-badge";
          badge.textContent = p.role_label;
          li.append(" ", badge);
        }
        return li;
      });
      if (!items.length) {
        const li = document.createElement("li");
        li.textContent = "No one yet.";
        items.push(li);
      }
      list.replaceChildren(...items);
      current = everyone;
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
    if (peopleList && peopleList.dataset.actionBase) hostRoom(peopleList);
    else if (peopleList && peopleList.dataset.peopleUrl) people(peopleList);
  });
})();
