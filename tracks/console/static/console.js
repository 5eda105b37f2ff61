// Light progressive enhancement: the pages work without it.
// - Runs: the counts by status refresh every few seconds from /api/runs (same filters).
// - A run: the timeline bars are placed from their data attributes (no inline styles: CSP).
"use strict";

function placeBars() {
  document.querySelectorAll(".bar[data-offset]").forEach((bar) => {
    bar.style.marginLeft = bar.dataset.offset + "%";
    bar.style.width = bar.dataset.width + "%";
  });
}

function liveCounts() {
  const list = document.getElementById("counts");
  if (!list || !window.fetch) return;
  const refresh = async () => {
    try {
      const answer = await fetch(list.dataset.source, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const data = await answer.json();
      list.querySelectorAll("[data-count]").forEach((cell) => {
        const value = data.counts[cell.dataset.count];
        if (value !== undefined) cell.textContent = String(value);
      });
      list.dataset.updated = new Date().toISOString();
      const stale = document.getElementById("stale");
      if (stale) stale.hidden = String(data.counts[list.dataset.key]) === list.dataset.shown;
    } catch (e) {
      /* the next round tries again */
    }
  };
  refresh();
  setInterval(refresh, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  placeBars();
  liveCounts();
});
