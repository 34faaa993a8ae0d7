// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  const browserZone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (err) {
      return "";
    }
  })();
  // A zone field nobody has set yet starts at the browser's zone (when the list has it).
  document.querySelectorAll("select[data-detect-zone]").forEach((select) => {
    if (browserZone && [...select.options].some((option) => option.value === browserZone)) {
      select.value = browserZone;
    }
  });
  // Times the server could only give in UTC: shown in the browser's zone, UTC kept beside.
  if (browserZone && browserZone !== "UTC" && browserZone !== "Etc/UTC") {
    const formats = {
      long: { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
      short: { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
    };
    document.querySelectorAll(".when[data-local]").forEach((span) => {
      const time = span.querySelector("time");
      const instant = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(instant.getTime())) return;
      const options = { ...(formats[span.dataset.style] || formats.long), timeZone: browserZone };
      const utc = document.createElement("span");
      utc.className = "utc";
      utc.textContent = `(${time.textContent})`;
      time.textContent = `${new Intl.DateTimeFormat("en-GB", options).format(instant)} ${browserZone.replace(/_/g, " ")}`;
      span.append(" ", utc);
      span.removeAttribute("data-local");
      span.dataset.zone = browserZone;
    });
  }
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const target = document.querySelector(button.dataset.copy);
      if (!target) return;
      try {
        await navigator.clipboard.writeText(target.textContent.trim());
        button.textContent = "Copied";
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});
