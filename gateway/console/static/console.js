// smsgw console: the overview refreshes itself. Text goes in through textContent only.
"use strict";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function stateCell(row, state) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "state-" + state;
  span.textContent = state;
  td.appendChild(span);
  row.appendChild(td);
}

function fill(id, rows, empty, columns) {
  const body = document.getElementById(id);
  if (!body) return;
  const fresh = document.createElement("tbody");
  fresh.id = id;
  rows.forEach((build) => {
    const tr = document.createElement("tr");
    build(tr);
    fresh.appendChild(tr);
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    cell(tr, empty).colSpan = columns;
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

function render(data) {
  const status = document.getElementById("ov-status");
  status.textContent = data.status;
  status.className = "state-" + data.status;
  const binds = [];
  const queues = [];
  data.carriers.forEach((c) => {
    c.binds.forEach((b) => binds.push((tr) => {
      cell(tr, c.carrier); cell(tr, b.bind); cell(tr, b.type); stateCell(tr, b.state);
      cell(tr, b.window_used + " / " + b.window, "num"); cell(tr, b.submit_rate, "num");
      cell(tr, b.connects, "num"); cell(tr, b.last_error);
    }));
    const r = c.receipts || {};
    queues.push((tr) => {
      cell(tr, c.carrier); cell(tr, c.queued, "num"); cell(tr, r.matched || 0, "num");
      cell(tr, r.unmatched || 0, "num"); cell(tr, r.held || 0, "num");
      cell(tr, r.expired_no_receipt || 0, "num");
    });
  });
  fill("ov-binds", binds, "No carrier binds are configured.", 8);
  fill("ov-queues", queues, "No carriers.", 6);
  const accounts = data.front ? data.front.accounts : [];
  fill("ov-front", accounts.map((a) => (tr) => {
    cell(tr, a.account); cell(tr, a.binds.length, "num");
    cell(tr, a.binds.map((b) => b.type + " " + b.peer).join(", "));
  }), data.front ? "No front accounts." : "The SMPP front is off.", 3);
  const errors = document.getElementById("ov-errors");
  errors.replaceChildren();
  data.errors.forEach((e) => {
    const li = document.createElement("li");
    const where = document.createElement("strong");
    where.textContent = e.where;
    li.appendChild(where);
    li.appendChild(document.createTextNode(": " + e.error));
    errors.appendChild(li);
  });
  if (!data.errors.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "None.";
    errors.appendChild(li);
  }
  const hour = data.last_hour;
  document.getElementById("ov-last-hour").textContent = hour
    ? "Made in the last hour: " + hour.sent + " sent, " + hour.delivered + " delivered, " +
      hour.failed + " failed (by the minute each was made)."
    : "The store cannot say for now.";
  const chart = document.getElementById("ov-minutes");
  const base = chart.src.split("?")[0];
  chart.src = base + "?at=" + Date.now();
  document.getElementById("ov-store").textContent = data.store ? data.store.status : "not shown";
  document.getElementById("ov-updated").textContent =
    "updated " + new Date().toLocaleTimeString();
}

function startRefresh(root) {
  const url = root.dataset.refreshUrl;
  const every = Math.max(1, Number(root.dataset.refreshSeconds) || 5) * 1000;
  const tick = async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) {
        window.location.assign(root.dataset.refreshUrl.replace(/overview\.json$/, "signin"));
        return;
      }
      if (answer.ok) render(await answer.json());
    } catch (err) {
      document.getElementById("ov-updated").textContent = "refresh failed; retrying";
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

// A part of a page marked data-live-url refreshes itself: the page is fetched again (same
// origin, our own escaped HTML) and the part of the same id replaces this one; it stops when
// the fresh part no longer carries data-live-url (a campaign done, an import finished).
function startLive(part) {
  const every = Math.max(1, Number(part.dataset.liveSeconds) || 10) * 1000;
  const note = document.getElementById(part.id.replace(/-live$/, "") + "-updated");
  const tick = async () => {
    const current = document.getElementById(part.id);
    if (!current || !current.dataset.liveUrl) return;
    try {
      const answer = await fetch(current.dataset.liveUrl, {
        credentials: "same-origin", cache: "no-store",
      });
      if (answer.redirected && /\/signin$/.test(new URL(answer.url).pathname)) {
        window.location.assign(answer.url);
        return;
      }
      if (answer.ok) {
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html")
          .getElementById(part.id);
        if (fresh) {
          const open = new Set();
          current.querySelectorAll("details[open]").forEach((d, i) => open.add(i));
          fresh.querySelectorAll("details").forEach((d, i) => { if (open.has(i)) d.open = true; });
          current.replaceWith(document.adoptNode(fresh));
          if (note) note.textContent = "updated " + new Date().toLocaleTimeString();
          if (!fresh.dataset.liveUrl) return;
        }
      }
    } catch (err) {
      if (note) note.textContent = "refresh failed; retrying";
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("overview");
  if (root) startRefresh(root);
  document.querySelectorAll("[data-live-url]").forEach(startLive);
});
