// Leash UI: live tables over Server-Sent Events, tabs and copy buttons.
// No inline script (CSP); everything is wired from data attributes.
(function () {
  "use strict";
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var prefix = meta("leash-prefix"), live = meta("leash-live");
  var liveStatus = document.getElementById("live-status");
  function say(el, text) { if (el) { el.textContent = text; } }

  function cell(tag, text, cls) {
    var c = document.createElement(tag);
    if (cls) { c.className = cls; }
    if (text !== undefined) { c.textContent = text; }
    return c;
  }
  function runnerRow(r) {
    var tr = document.createElement("tr");
    tr.dataset.id = r.id;
    var th = cell("th"); th.scope = "row";
    var a = cell("a", r.id); a.href = r.href; th.appendChild(a); tr.appendChild(th);
    var td = cell("td"); td.appendChild(cell("span", r.status, "badge " + r.status)); tr.appendChild(td);
    tr.appendChild(cell("td", r.last_seen));
    tr.appendChild(cell("td", r.version));
    tr.appendChild(cell("td", r.labels));
    tr.appendChild(cell("td", r.not_after, r.expiry));
    return tr;
  }
  // drawRunners updates the runners table in place: cells change, rows
  // are rebuilt only when runners come or go, so that keyboard focus on a
  // runner's link survives the updates.
  function drawRunners(rows) {
    var body = document.querySelector("#runners tbody");
    if (!body || rows.length === 0) { return; }
    var trs = Array.prototype.slice.call(body.querySelectorAll("tr[data-id]"));
    var before = {};
    trs.forEach(function (tr) { before[tr.dataset.id] = tr.querySelector(".badge").textContent; });
    var changes = [];
    rows.forEach(function (r) {
      if (!(r.id in before)) { changes.push(r.id + " appeared (" + r.status + ")"); }
      else if (before[r.id] !== r.status) { changes.push(r.id + " is now " + r.status); }
    });
    var sameRows = trs.length === rows.length && trs.every(function (tr, i) { return tr.dataset.id === rows[i].id; });
    if (sameRows) {
      rows.forEach(function (r, i) {
        var tds = trs[i].querySelectorAll("td");
        var badge = tds[0].querySelector(".badge");
        if (badge.textContent !== r.status) { badge.textContent = r.status; badge.className = "badge " + r.status; }
        [r.last_seen, r.version, r.labels, r.not_after].forEach(function (v, j) {
          if (tds[j + 1].textContent !== v) { tds[j + 1].textContent = v; }
        });
        tds[4].className = r.expiry;
      });
    } else {
      var frag = document.createDocumentFragment();
      rows.forEach(function (r) { frag.appendChild(runnerRow(r)); });
      body.replaceChildren(frag);
    }
    if (changes.length) { say(liveStatus, changes.join("; ")); }
  }
  function drawStatus(rows, id) {
    var el = document.getElementById("runner-status");
    rows.forEach(function (r) {
      if (el && r.id === id && el.textContent !== r.status) {
        el.textContent = r.status; el.className = "badge " + r.status;
        say(liveStatus, id + " is now " + r.status);
      }
    });
  }
  function addEvent(e) {
    var body = document.querySelector("#events tbody");
    if (!body) { return; }
    var tr = document.createElement("tr");
    [e.time, e.kind, e.level, e.message].forEach(function (t) { tr.appendChild(cell("td", t)); });
    body.appendChild(tr);
  }

  if (live) {
    var runner = live.indexOf("runner:") === 0 ? live.slice(7) : "";
    if (window.EventSource) {
      var url = prefix + "/events" + (runner ? "?runner=" + encodeURIComponent(runner) : "");
      var es = new EventSource(url);
      es.addEventListener("runners", function (m) {
        var rows = JSON.parse(m.data);
        if (runner) { drawStatus(rows, runner); } else { drawRunners(rows); }
      });
      es.addEventListener("event", function (m) { addEvent(JSON.parse(m.data)); });
      es.onopen = function () { document.body.dataset.live = "connected"; };
      es.onerror = function () { document.body.dataset.live = "reconnecting"; };
    } else {
      setTimeout(function () { window.location.reload(); }, 10000);
    }
  }

  // Tabs (WAI-ARIA pattern): click or arrow keys.
  document.querySelectorAll('[role="tablist"]').forEach(function (list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
    function select(tab) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
      });
      tab.focus();
    }
    tabs.forEach(function (t, i) {
      t.addEventListener("click", function () { select(t); });
      t.addEventListener("keydown", function (ev) {
        if (ev.key === "ArrowRight") { select(tabs[(i + 1) % tabs.length]); ev.preventDefault(); }
        if (ev.key === "ArrowLeft") { select(tabs[(i - 1 + tabs.length) % tabs.length]); ev.preventDefault(); }
      });
    });
  });

  // Copy buttons: Clipboard API, with a visible and announced status.
  var copyStatus = document.getElementById("copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var text = document.getElementById(b.dataset.copy).textContent;
      var done = function () { say(copyStatus, "Copied: " + b.textContent.replace(/^Copy /, "")); };
      var failed = function () { say(copyStatus, "Copy failed: select the text and copy it by hand."); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, failed);
      } else { failed(); }
    });
  });
})();
