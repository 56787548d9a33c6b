/* The segment builder: rows of conditions that write the segment's JSON into its text
   area. The JSON stays editable; a hand edit that the rows can show is drawn back into
   them, one they cannot (nested groups) leaves the rows aside and says so. A JSON text
   that does not parse is kept as typed (console.js names the place of the mistake). */
(function () {
  "use strict";
  var box = document.getElementById("segment-builder");
  var def = document.getElementById("segment-def");
  if (!box || !def) { return; }
  var L = JSON.parse(box.getAttribute("data-labels") || "{}");
  var rowsEl = box.querySelector(".seg-rows");
  var match = box.querySelector("select[name=seg-match]");
  var note = box.querySelector(".seg-note");

  // kind -> how it reads and writes one condition
  var KINDS = ["attr", "list", "variant", "opened", "not_opened", "clicked", "bounced", "created_after"];
  var ACTIVITY = { opened: "opened_in_last_sends", not_opened: "not_opened_in_last_sends",
                   clicked: "clicked_in_last_sends" };
  var OPS = ["eq", "ne", "contains", "exists"];

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function options(select, values, chosen) {
    values.forEach(function (v) {
      var o = el("option", { value: v }, L[v] || v);
      if (v === chosen) { o.selected = true; }
      select.appendChild(o);
    });
  }

  function fromCondition(c) {
    /* A condition object -> {kind, attr, op, value}, or null when the rows cannot show it. */
    if (!c || typeof c !== "object" || Array.isArray(c)) { return null; }
    var keys = Object.keys(c);
    if (keys.indexOf("attr") >= 0) {
      if (OPS.indexOf(c.op) < 0) { return null; }
      return { kind: "attr", attr: String(c.attr), op: c.op, value: c.value === undefined ? "" : String(c.value) };
    }
    if (keys.length !== 1) { return null; }
    var k = keys[0], v = c[k];
    if (k === "list") { return { kind: "list", value: String(v) }; }
    if (k === "variant") { return { kind: "variant", value: String(v) }; }
    if (k === "bounced") { return v === true ? { kind: "bounced", value: "" } : null; }
    if (k === "created_after") { return { kind: "created_after", value: String(v) }; }
    for (var kind in ACTIVITY) {
      if (ACTIVITY[kind] === k) { return { kind: kind, value: String(v) }; }
    }
    return null;
  }

  function toCondition(r) {
    if (r.kind === "attr") {
      var c = { attr: r.attr, op: r.op };
      if (r.op !== "exists") { c.value = r.value; }
      return c;
    }
    if (r.kind === "bounced") { return { bounced: true }; }
    if (ACTIVITY[r.kind]) { var a = {}; a[ACTIVITY[r.kind]] = parseInt(r.value, 10) || 1; return a; }
    var o = {}; o[r.kind] = r.value; return o;
  }

  function read() {
    return Array.prototype.map.call(rowsEl.querySelectorAll(".seg-row"), function (row) {
      return {
        kind: row.querySelector("[name=seg-kind]").value,
        attr: (row.querySelector("[name=seg-attr]") || {}).value || "",
        op: (row.querySelector("[name=seg-op]") || {}).value || "eq",
        value: (row.querySelector("[name=seg-value]") || {}).value || ""
      };
    });
  }

  function write() {
    /* The rows -> the JSON in the text area, then the live count runs as on typing. */
    var conds = read().map(toCondition);
    var doc = conds.length === 1 ? conds[0] : {};
    if (conds.length !== 1) { doc[match.value] = conds; }
    def.value = JSON.stringify(doc, null, 1).replace(/\n\s*/g, " ");
    def.dispatchEvent(new Event("input"));
    note.textContent = "";
  }

  function addRow(r) {
    var n = rowsEl.children.length + 1;
    var row = el("div", { "class": "seg-row row", role: "group", "aria-label": (L._condition || "") + " " + n });
    var kind = el("select", { name: "seg-kind", "aria-label": (L._kind || "") + " " + n });
    options(kind, KINDS, r.kind);
    row.appendChild(kind);
    if (r.kind === "attr") {
      row.appendChild(el("input", { name: "seg-attr", value: r.attr || "", "aria-label": (L._attr || "") + " " + n,
                                    placeholder: L._attr || "", maxlength: "64" }));
      var op = el("select", { name: "seg-op", "aria-label": (L._op || "") + " " + n });
      options(op, OPS, r.op || "eq");
      row.appendChild(op);
    }
    if (r.kind !== "bounced" && !(r.kind === "attr" && r.op === "exists")) {
      var type = r.kind === "created_after" ? "date" : (ACTIVITY[r.kind] ? "number" : "text");
      var attrs = { name: "seg-value", type: type, value: r.value || "", "aria-label": (L._value || "") + " " + n };
      if (type === "number") { attrs.min = "1"; attrs.max = "100"; }
      row.appendChild(el("input", attrs));
    }
    var drop = el("button", { type: "button", "class": "link", "aria-label": (L._remove || "") + " " + n }, L._remove || "×");
    drop.addEventListener("click", function () { row.remove(); write(); });
    row.appendChild(drop);
    row.addEventListener("change", function (e) {
      if (e.target.name === "seg-kind" || e.target.name === "seg-op") { redraw(read()); }
      write();
    });
    row.addEventListener("input", function (e) {
      if (e.target.name === "seg-value" || e.target.name === "seg-attr") { write(); }
    });
    rowsEl.appendChild(row);
  }

  function redraw(rows) {
    rowsEl.textContent = "";
    rows.forEach(addRow);
  }

  function fromJson(text) {
    /* The text area -> rows; null when it cannot be shown as rows. */
    var doc = JSON.parse(text);
    var one = fromCondition(doc);
    if (one) { return { match: "all", rows: [one] }; }
    var key = doc && (doc.all ? "all" : (doc.any ? "any" : null));
    if (!key || !Array.isArray(doc[key]) || Object.keys(doc).length !== 1) { return null; }
    var rows = doc[key].map(fromCondition);
    return rows.some(function (r) { return r === null; }) ? null : { match: key, rows: rows };
  }

  def.addEventListener("input", function (e) {
    if (!e.isTrusted) { return; }  // our own write
    try {
      var shown = fromJson(def.value);
      if (shown) { match.value = shown.match; redraw(shown.rows); note.textContent = ""; }
      else { note.textContent = L._custom || ""; }
    } catch (err) {
      // kept as typed; console.js says where the JSON goes wrong
    }
  });
  match.addEventListener("change", write);
  box.querySelector(".seg-add").addEventListener("click", function () {
    addRow({ kind: "attr", attr: "", op: "eq", value: "" });
    write();
  });
  try {
    var first = fromJson(def.value);
    if (first) { match.value = first.match; redraw(first.rows); }
  } catch (err) { /* a stored text that does not parse stays as it is */ }
}());
