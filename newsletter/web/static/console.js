/* Console behaviour in plain JavaScript: preview tabs, live send progress (polling),
   import upload and background jobs with a row-count progress bar, live segment counts,
   confirmations. */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function fmt(n) { return (n || 0).toLocaleString(); }
  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body instanceof FormData) { opts.body = body; }
    else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) { throw new Error(j.detail || r.status); } return j; });
    });
  }

  // Confirm dangerous forms.
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  });

  // Preview tabs.
  var frame = $("#preview");
  if (frame) {
    var tabs = Array.prototype.slice.call(document.querySelectorAll("[role=tab][data-tab]"));
    var panel = $("#preview-panel");
    var choose = function (b) {
      tabs.forEach(function (x) {
        var on = x === b;
        x.classList.toggle("on", on);
        x.setAttribute("aria-selected", on ? "true" : "false");
        x.tabIndex = on ? 0 : -1;
      });
      if (panel) { panel.setAttribute("aria-labelledby", b.id); }
      frame.width = b.getAttribute("data-width");
      frame.src = frame.getAttribute("data-base") + b.getAttribute("data-tab") + "?v=" + frame.getAttribute("data-variant");
    };
    tabs.forEach(function (b, i) {
      b.addEventListener("click", function () { choose(b); });
      b.addEventListener("keydown", function (ev) {  // arrow keys move between tabs
        var to = ev.key === "ArrowRight" ? i + 1 : ev.key === "ArrowLeft" ? i - 1 : ev.key === "Home" ? 0 : ev.key === "End" ? tabs.length - 1 : null;
        if (to === null) { return; }
        ev.preventDefault();
        var t = tabs[(to + tabs.length) % tabs.length];
        t.focus(); choose(t);
      });
    });
  }

  // Live progress of a send.
  var box = $("#progress");
  if (box) {
    var id = box.getAttribute("data-send");
    var busy = { planning: 1, sending: 1, scheduled: 1, draft: 1, paused: 1 };
    var labels = {};
    try { labels = JSON.parse(box.getAttribute("data-labels") || "{}"); } catch (e) { labels = {}; }
    var say = function (k, fallback) { return labels[k] || fallback; };
    var tick = function () {
      api("GET", "/api/sends/" + id).then(function (p) {
        $("#p-state").textContent = p.pausing ? (p.state === "cancelled" ? say("cancelling", "cancelling…") : say("pausing", "pausing…")) : say(p.state, p.state);
        $("#p-state").className = "badge st-" + p.state;
        $("#p-percent").textContent = p.percent + "%";
        $("#p-fill").style.width = p.percent + "%";
        $("#p-done").textContent = fmt(p.done);
        $("#p-total").textContent = fmt(p.total);
        $("#p-rate").textContent = p.rate_per_second || 0;
        $("#p-remaining").textContent = fmt(p.remaining);
        $("#p-elapsed").textContent = (p.elapsed_seconds || 0).toFixed(1);
        Object.keys(p.counts).forEach(function (k) { var el = $("#c-" + k); if (el) { el.textContent = fmt(p.counts[k]); } });
        var wxEl = $("#p-wechat");
        if (wxEl && p.wechat) { wxEl.textContent = say("wx-" + p.wechat.state, p.wechat.state) + (p.wechat.error ? " — " + p.wechat.error : ""); }
        if (p.relays) {  // per-relay counts move with the others
          document.querySelectorAll("[data-relay]").forEach(function (el) {
            var n = p.relays[el.getAttribute("data-relay")];
            if (n !== undefined) { el.textContent = fmt(n); }
          });
        }
        box.setAttribute("data-state", p.state);
        document.querySelectorAll("form[data-when]").forEach(function (f) {
          f.hidden = f.getAttribute("data-when").split(" ").indexOf(p.state) < 0;
        });
        if (busy[p.state]) { setTimeout(tick, p.state === "sending" || p.state === "planning" ? 1000 : 4000); }
      }).catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 500);
  }

  // Import with upload progress, then job polling.
  var imp = $("#import-form");
  if (imp) {
    imp.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var status = $("#import-status"), fill = $("#import-fill"), text = $("#import-text");
      status.hidden = false;
      var fd = new FormData(imp);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", imp.getAttribute("data-api"));
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          fill.style.width = Math.round(40 * e.loaded / e.total) + "%";
          text.textContent = text.getAttribute("data-uploading") + " " + Math.round(100 * e.loaded / e.total) + "%";
        }
      };
      xhr.onload = function () {
        var job;
        try { job = JSON.parse(xhr.responseText); } catch (e) { job = { detail: xhr.status }; }
        if (xhr.status >= 300) { text.textContent = job.message || job.detail || xhr.status; text.className = "bad"; return; }
        poll(job.id);
      };
      xhr.send(fd);
    });
    var poll = function (jobId) {
      var link = $("#import-job");
      link.href = "/console/jobs/" + jobId; link.hidden = false;
      api("GET", "/api/jobs/" + jobId).then(function (j) {
        var fill = $("#import-fill"), text = $("#import-text"), bar = $("#import-bar");
        var rows = fmt(j.done) + " / " + (j.total === null ? "?" : fmt(j.total)) + " " + text.getAttribute("data-rows");
        if (j.state === "queued" || j.state === "running") {
          fill.style.width = j.percent + "%";
          bar.setAttribute("aria-valuenow", j.percent);
          text.textContent = text.getAttribute(j.state === "queued" ? "data-queued" : "data-importing") + " · " + rows + " · " + j.percent + "%";
          setTimeout(function () { poll(jobId); }, 700);
          return;
        }
        fill.style.width = "100%";
        bar.setAttribute("aria-valuenow", 100);
        text.textContent = j.state === "done" ? text.getAttribute("data-done") + " · " + rows + " (" + j.seconds + " s)" : (j.error || j.state);
        text.className = j.state === "done" ? "good" : "bad";
        var t = $("#import-summary");
        t.innerHTML = "";
        var labels = {};
        try { labels = JSON.parse(t.getAttribute("data-labels") || "{}"); } catch (e) { labels = {}; }
        if (j.result) {
          ["rows", "new", "updated", "unchanged", "invalid", "duplicate", "suppressed", "resubscribed", "errors"].forEach(function (k) {
            var tr = document.createElement("tr"), a = document.createElement("th"), b = document.createElement("td");
            a.textContent = labels[k] || k; b.textContent = fmt(j.result[k]); tr.appendChild(a); tr.appendChild(b); t.appendChild(tr);
          });
        }
        var rep = $("#import-report");
        if (j.has_report) { rep.href = "/api/imports/" + jobId + "/errors.csv"; rep.hidden = false; }
        if (j.state === "done") { refreshLists(); }
      }).catch(function () { setTimeout(function () { poll(jobId); }, 2000); });
    };
  }

  // A background job's page: rows done of total, polled until it ends (then reloaded).
  var jobBox = $("#job");
  if (jobBox) {
    var jobId = jobBox.getAttribute("data-job");
    var jobLabels = {};
    try { jobLabels = JSON.parse(jobBox.getAttribute("data-labels") || "{}"); } catch (e) { jobLabels = {}; }
    var live = { queued: 1, running: 1 };
    var watch = function () {
      api("GET", "/api/jobs/" + jobId).then(function (j) {
        if (!live[j.state]) { if (live[jobBox.getAttribute("data-state")]) { window.location.reload(); } return; }
        $("#j-state").textContent = jobLabels[j.state] || j.state;
        $("#j-state").className = "badge st-" + j.state;
        $("#j-percent").textContent = j.percent + "%";
        $("#j-fill").style.width = j.percent + "%";
        $("#j-bar").setAttribute("aria-valuenow", j.percent);
        $("#j-done").textContent = fmt(j.done);
        $("#j-total").textContent = j.total === null ? "?" : fmt(j.total);
        $("#j-changed").textContent = fmt(j.changed);
        $("#j-seconds").textContent = j.seconds;
        setTimeout(watch, 700);
      }).catch(function () { setTimeout(watch, 3000); });
    };
    if (live[jobBox.getAttribute("data-state")]) { setTimeout(watch, 300); }
  }

  // After an import, the lists table shows the new counts (and a new list) without a reload.
  function refreshLists() {
    var body = $("#lists-body");
    if (!body) { return; }
    api("GET", "/api/lists").then(function (lists) {
      var tpl = $("#lists-row");
      body.innerHTML = "";
      lists.forEach(function (l) {
        var row = tpl.content.firstElementChild.cloneNode(true);
        var name = $(".l-name a", row);
        name.textContent = l.name; name.href = "?list_id=" + l.id;
        $(".l-active", row).textContent = fmt(l.active);
        var ex = $(".l-export a", row);
        if (ex) { ex.href = "/console/lists/" + l.id + "/export.csv"; }
        var ed = $(".l-edit", row);
        if (ed) { ed.href = "/console/lists/" + l.id; }
        row.setAttribute("data-list", l.id);
        body.appendChild(row);
      });
    });
  }

  // Tick every row of a search result.
  var all = $("#bulk-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("#bulk input[name=ids]").forEach(function (b) { b.checked = all.checked; });
    });
  }

  // Live segment count.
  var def = $("#segment-def");
  if (def) {
    var timer = null;
    var count = function () {
      var parsed;
      try { parsed = JSON.parse(def.value || "null"); } catch (e) {
        // what was typed stays; the message says where it goes wrong (line, column)
        var m = /position (\d+)/.exec(String(e && e.message));
        var said = def.getAttribute("data-json-error") || "JSON";
        if (m) {
          var before = def.value.slice(0, parseInt(m[1], 10)).split("\n");
          said += (def.getAttribute("data-json-at") || " {line}:{col}")
            .replace("{line}", before.length).replace("{col}", before[before.length - 1].length + 1);
        }
        $("#segment-count").textContent = "—";
        $("#segment-error").textContent = said;
        return;
      }
      var lid = $("#segment-list").value;
      api("POST", "/api/segments/count", { definition: parsed, list_id: lid ? parseInt(lid, 10) : null })
        .then(function (r) { $("#segment-count").textContent = fmt(r.count); $("#segment-error").textContent = ""; })
        .catch(function (e) { $("#segment-count").textContent = "—"; $("#segment-error").textContent = e.message; });
    };
    var later = function () { clearTimeout(timer); timer = setTimeout(count, 300); };
    def.addEventListener("input", later);
    $("#segment-list").addEventListener("change", later);
    count();
  }

  // The import page: rich text pasted from a browser or Word carries text/html on the
  // clipboard; keep it so the server reads its headings, bold lines, tables and links.
  var paste = $("#import-paste"), pasted = $("#import-html");
  if (paste && pasted) {
    paste.addEventListener("paste", function (ev) {
      var data = ev.clipboardData;
      var rich = data && data.getData ? data.getData("text/html") : "";
      if (rich) { pasted.value = rich; }
    });
    paste.addEventListener("input", function () {
      if (!paste.value.trim()) { pasted.value = ""; }
    });
  }
})();
