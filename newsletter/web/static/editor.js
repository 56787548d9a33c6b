/* The source editor: lint and preview as one types (plain JavaScript, no libraries).
   A moment after typing stops, the text is posted to the preview endpoint; the answer
   redraws the lint list and the chosen channel in a sandboxed frame. Answers that
   arrive out of order are dropped. */
(function () {
  "use strict";
  var form = document.getElementById("editor-form");
  if (!form) { return; }
  var source = document.getElementById("source");
  var frame = document.getElementById("editor-preview");
  var tabbar = document.getElementById("editor-tabs");
  var lintList = document.getElementById("editor-lint");
  var status = document.getElementById("editor-status");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var L = JSON.parse(form.getAttribute("data-labels") || "{}");
  var variant = "zh-Hans";
  var current = "email_html";
  var outputs = {};
  var order = [];
  var timer = null;
  var seq = 0;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function label(name) {
    if (name.indexOf("wechat-") === 0) { return (L.wechat || "WeChat") + " " + name.slice(7); }
    return L[name] || name;
  }
  function drawFrame() {
    var html = outputs[current];
    if (html === undefined) { current = order[0] || "email_html"; html = outputs[current] || ""; }
    if (current === "email_text") {
      html = "<!doctype html><meta charset='utf-8'><pre style='white-space:pre-wrap;" +
        "font-family:monospace;padding:12px'>" + esc(html) + "</pre>";
    }
    frame.width = current === "email_html" ? 760 : 375;
    frame.srcdoc = html;
  }
  function drawTabs() {
    tabbar.textContent = "";
    order.forEach(function (name, i) {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("role", "tab");
      b.id = "etab-" + i;
      b.setAttribute("aria-controls", "editor-panel");
      var on = name === current;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on) { b.className = "on"; }
      b.textContent = label(name);
      b.addEventListener("click", function () { current = name; drawTabs(); drawFrame(); });
      tabbar.appendChild(b);
    });
  }
  function goToLine(n) {
    /* Select line n (1-based) of the source and bring it into view. */
    var lines = source.value.split("\n");
    if (n < 1 || n > lines.length) { return; }
    var start = 0;
    for (var i = 0; i < n - 1; i++) { start += lines[i].length + 1; }
    source.focus();
    source.setSelectionRange(start, start + lines[n - 1].length);
    var lh = parseFloat(window.getComputedStyle(source).lineHeight) || 20;
    source.scrollTop = Math.max(0, (n - 3) * lh);
  }
  function drawLint(lint, errors) {
    lintList.textContent = "";
    var items = (lint.messages || []).slice();
    Object.keys(errors || {}).forEach(function (ch) {
      items.push({ level: "error", line: null, code: ch, message: errors[ch] });
    });
    if (!items.length) {
      var ok = document.createElement("li");
      ok.className = "good";
      ok.textContent = L._none || "OK";
      lintList.appendChild(ok);
      return;
    }
    items.forEach(function (m) {
      var li = document.createElement("li");
      li.className = m.level;
      var family = String(m.code || "").split(":")[0];
      var text = "";
      if (m.line) {
        var go = document.createElement("button");
        go.type = "button";
        go.className = "link";
        go.textContent = (L._line || "line") + " " + m.line;
        go.addEventListener("click", function () { goToLine(m.line); });
        li.appendChild(go);
        text += " · ";
      }
      var meaning = L[m.code] || L[family];
      if (meaning) { text += meaning + "："; }
      li.appendChild(document.createTextNode(text + m.message + " (" + m.code + ")"));
      lintList.appendChild(li);
    });
  }
  function refresh() {
    var mine = ++seq;
    status.textContent = L._checking || "…";
    fetch(form.getAttribute("data-preview"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: JSON.stringify({ source: source.value, variant: variant })
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, body: j }; });
    }).then(function (x) {
      if (mine !== seq) { return; }
      if (!x.ok) { status.textContent = (L._failed || "failed") + ": " + (x.body.detail || ""); return; }
      outputs = x.body.outputs || {};
      order = x.body.order || [];
      var lint = x.body.lint || {};
      status.textContent = (L._checked || "") + " · " + (lint.errors || 0) + " " + (L._error || "") +
        ", " + (lint.warnings || 0) + " " + (L._warning || "");
      drawLint(lint, x.body.errors);
      drawTabs();
      drawFrame();
    }).catch(function () {
      if (mine === seq) { status.textContent = L._failed || "failed"; }
    });
  }
  source.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 600);
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-variant]"), function (b) {
    b.addEventListener("click", function () {
      variant = b.getAttribute("data-variant");
      Array.prototype.forEach.call(document.querySelectorAll("[data-variant]"), function (x) {
        var on = x === b;
        x.classList.toggle("on", on);
        x.setAttribute("aria-pressed", on ? "true" : "false");
      });
      refresh();
    });
  });
  var wanted = /^#L(\d+)$/.exec(window.location.hash || "");
  if (wanted) { goToLine(parseInt(wanted[1], 10)); }
  refresh();
}());
