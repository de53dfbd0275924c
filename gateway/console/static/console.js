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
          // Keyboard users keep their place: the focused element, found again by its id.
          const focused = current.contains(document.activeElement) ? document.activeElement.id : "";
          const open = new Set();
          current.querySelectorAll("details[open]").forEach((d, i) => open.add(i));
          fresh.querySelectorAll("details").forEach((d, i) => { if (open.has(i)) d.open = true; });
          current.replaceWith(document.adoptNode(fresh));
          const again = focused ? document.getElementById(focused) : null;
          if (again) again.focus();
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

// The text preview of the campaign form: GSM-7 or UCS-2, characters and parts, as the
// gateway splits (gateway/smpp/text.py: 160 septets or 70 UCS-2 units in one part, else
// 153 or 67 a part with an 8-bit-reference UDH; an escape pair or a surrogate pair is never
// cut). The alphabet comes from the page (the gateway's own tables).
function textPreview(text, basic, extension) {
  let septets = 0;
  let gsm = true;
  let outside = "";
  const units = [];  // per character: its size in septets (GSM) or UTF-16 units
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (basic.has(code)) { septets += 1; units.push(1); }
    else if (extension.has(code)) { septets += 2; units.push(2); }
    else { gsm = false; if (!outside) outside = ch; }
  }
  let sizes;
  let single;
  let multi;
  if (gsm) {
    sizes = units; single = 160; multi = 153;
  } else {
    sizes = Array.from(text, (ch) => ch.length); single = 70; multi = 67;
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  let parts = total === 0 ? 0 : 1;
  if (total > single) {
    parts = 0;
    let used = multi;
    sizes.forEach((size) => {
      if (used + size > multi) { parts += 1; used = 0; }
      used += size;
    });
  }
  return { encoding: gsm ? "GSM-7" : "UCS-2", units: total, parts: parts, outside: outside,
    perPart: parts > 1 ? multi : single };
}

function startPreview(area) {
  const out = document.getElementById(area.dataset.preview);
  const codes = (name) => new Set((area.dataset[name] || "").split(",").filter(Boolean).map(Number));
  const basic = codes("gsm7");
  const extension = codes("gsm7Extension");
  const show = () => {
    const p = textPreview(area.value, basic, extension);
    out.dataset.encoding = p.encoding;
    out.dataset.parts = String(p.parts);
    out.textContent = p.encoding + " · " + p.units +
      (p.encoding === "GSM-7" ? " septets" : " UTF-16 units") + " · " + p.parts +
      (p.parts === 1 ? " part" : " parts") + " (" + p.perPart + " a part)" +
      (p.outside ? " · UCS-2 because of “" + p.outside + "”" : "");
  };
  area.addEventListener("input", show);
  show();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("textarea[data-preview]").forEach(startPreview);
});
