// The booking and edit form: choosing a level applies its locks in place, so nothing typed
// is lost and keyboard focus stays on the level list (WCAG 3.2.2: no change of context on
// input). Without JavaScript the "Apply level" button posts the form back with the locks.
(() => {
  "use strict";

  const apply = (form, levels, code) => {
    const level = levels[code];
    if (!level) return;
    const banner = document.getElementById("level-banner");
    if (banner) {
      banner.className = `banner level-${code}`;
      banner.textContent = level.name;
    }
    document.querySelectorAll(".level-name").forEach((el) => { el.textContent = level.name; });
    document.getElementById("level-not-bookable").hidden = level.bookable;
    document.getElementById("level-needs-factor").hidden = !level.needs_factor;
    let fixed = 0;
    form.querySelectorAll("[data-option]").forEach((row) => {
      const name = row.dataset.option;
      const box = row.querySelector(`input[type=checkbox][name="${name}"]`);
      const note = document.getElementById(`lock-${name}`);
      const lock = level.locks[name];
      let carrier = row.querySelector("[data-lock-carrier]");
      if (lock) {
        fixed += 1;
        if (!box.disabled) box.dataset.chosen = box.checked ? "1" : "0"; // what the host chose
        box.disabled = true;
        box.checked = lock.value;
        box.setAttribute("aria-describedby", note.id);
        row.classList.add("locked");
        note.querySelector(".lock-text").textContent = `Locked by ${level.name}: ${lock.reason}`;
        note.hidden = false;
        // A disabled box is not posted: the hidden input carries a locked "on".
        if (lock.value && !carrier) {
          carrier = document.createElement("input");
          carrier.type = "hidden";
          carrier.name = name;
          carrier.value = "on";
          carrier.dataset.lockCarrier = "";
          row.append(carrier);
        } else if (!lock.value && carrier) {
          carrier.remove();
        }
      } else {
        if (box.disabled && box.dataset.chosen !== undefined) box.checked = box.dataset.chosen === "1";
        box.disabled = false;
        box.removeAttribute("aria-describedby");
        row.classList.remove("locked");
        note.hidden = true;
        if (carrier) carrier.remove();
      }
    });
    const summary = document.getElementById("level-summary");
    if (summary) {
      summary.textContent = fixed
        ? `${level.name}: ${fixed} option${fixed === 1 ? "" : "s"} fixed by the level.`
        : `${level.name}: the host decides every option.`;
    }
  };

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("booking-form");
    const data = document.getElementById("level-locks");
    if (!form || !data) return;
    const levels = JSON.parse(data.textContent);
    const select = form.querySelector("#id_classification");
    const applyButton = document.getElementById("apply-level");
    if (applyButton) applyButton.hidden = true;
    form.querySelectorAll("[data-option] input[type=checkbox]").forEach((box) => {
      if (!box.disabled) box.dataset.chosen = box.checked ? "1" : "0";
      box.addEventListener("change", () => { box.dataset.chosen = box.checked ? "1" : "0"; });
    });
    select.addEventListener("change", () => {
      apply(form, levels, select.value);
      const url = new URL(window.location.href);
      url.searchParams.set("level", select.value);
      window.history.replaceState(null, "", url); // a reload keeps the level, sends nothing
    });
  });
})();
