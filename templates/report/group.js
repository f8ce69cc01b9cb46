/* mmrqa group report: table sorting and filtering, the rating widget and the ratings TSV.
   Plain JavaScript, no network. Ratings live in localStorage, keyed by this file's path. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("mmrqa-config").textContent);
  var ids = {};
  JSON.parse(document.getElementById("mmrqa-runs").textContent).forEach(function (r) { ids[r.bids_name] = r; });
  var storeKey = "mmrqa-ratings:" + location.pathname;
  var ratings = {};
  try { ratings = JSON.parse(window.localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { ratings = {}; }

  function persist() {
    try { window.localStorage.setItem(storeKey, JSON.stringify(ratings)); } catch (e) { /* private mode: keep in memory */ }
  }

  /* ---- sorting ---- */
  function cellValue(row, index, type) {
    var cell = row.cells[index];
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (type !== "num") { return raw.toLowerCase(); }
    var x = parseFloat(raw);
    return isNaN(x) ? null : x;
  }
  function sortTable(table, index, type, ascending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, type), y = cellValue(b, index, type);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === index) { th.setAttribute("aria-sort", ascending ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.data"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        sortTable(table, i, th.getAttribute("data-type"), th.getAttribute("aria-sort") !== "ascending");
      });
    });
  });

  /* ---- filtering ---- */
  var runsTable = document.getElementById("runs-table");
  var filter = document.getElementById("filter");
  var gradeFilter = document.getElementById("grade-filter");
  var outliersOnly = document.getElementById("outliers-only");
  var unratedOnly = document.getElementById("unrated-only");
  function applyFilter() {
    var q = filter.value.trim().toLowerCase(), shown = 0, rows = runsTable.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (row) {
      var name = row.getAttribute("data-run");
      var ok = (!q || row.textContent.toLowerCase().indexOf(q) >= 0)
        && (!gradeFilter.value || row.getAttribute("data-grade") === gradeFilter.value)
        && (!outliersOnly.checked || row.getAttribute("data-outliers") !== "0")
        && (!unratedOnly.checked || !(ratings[name] && ratings[name].rating));
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " shown";
  }
  [filter, gradeFilter, outliersOnly, unratedOnly].forEach(function (el) {
    el.addEventListener("input", applyFilter);
    el.addEventListener("change", applyFilter);
  });
  var metricFilter = document.getElementById("metric-filter");
  metricFilter.addEventListener("input", function () {
    var q = metricFilter.value.trim().toLowerCase();
    Array.prototype.forEach.call(document.getElementById("metrics-table").tBodies[0].rows, function (row) {
      row.hidden = !!q && row.textContent.toLowerCase().indexOf(q) < 0;
    });
  });

  /* ---- rating widget ---- */
  function paint(row) {
    var name = row.getAttribute("data-run"), r = ratings[name] || {};
    Array.prototype.forEach.call(row.querySelectorAll(".rate button"), function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-rating") === r.rating));
    });
    var art = row.querySelector("select.art"), note = row.querySelector("input.note");
    if (art) { art.value = r.artifact || "none"; }
    if (note) { note.value = r.notes || ""; }
    row.className = r.rating ? "rated-" + r.rating : "";
    var cell = row.querySelector("td.ratecell");
    if (cell) { cell.setAttribute("data-value", r.rating || ""); }
  }
  function ratedNames() {
    return Object.keys(ratings).filter(function (n) { return ratings[n] && ratings[n].rating && ids[n]; });
  }
  function refreshCount() {
    var n = ratedNames().length;
    document.getElementById("rated-count").textContent = n + " rated";
  }
  function update(name, change) {
    var r = ratings[name] || {};
    Object.keys(change).forEach(function (k) { r[k] = change[k]; });
    ratings[name] = r;
    persist();
    refreshCount();
  }
  Array.prototype.forEach.call(runsTable.tBodies[0].rows, function (row) {
    var name = row.getAttribute("data-run");
    if (!row.querySelector(".rate")) { return; }
    Array.prototype.forEach.call(row.querySelectorAll(".rate button"), function (b) {
      b.addEventListener("click", function () {
        var value = b.getAttribute("data-rating");
        var current = (ratings[name] || {}).rating;
        update(name, { rating: current === value ? "" : value });
        paint(row);
      });
    });
    row.querySelector("select.art").addEventListener("change", function (ev) { update(name, { artifact: ev.target.value }); });
    row.querySelector("input.note").addEventListener("input", function (ev) { update(name, { notes: ev.target.value }); });
    paint(row);
  });

  /* ---- ratings TSV (columns of mmrqa_bids.ratings.COLUMNS) ---- */
  function tsvCell(value) {
    var text = value === undefined || value === null ? "" : String(value).replace(/[\t\r\n]+/g, " ").trim();
    return text === "" ? "n/a" : text;
  }
  function ratingsTSV() {
    var lines = [config.columns.join("\t")];
    ratedNames().sort().forEach(function (name) {
      var r = ratings[name], fields = {};
      Object.keys(ids[name]).forEach(function (k) { fields[k] = ids[name][k]; });
      fields.rating = r.rating;
      fields.artifact = r.artifact && r.artifact !== "none" ? r.artifact : "n/a";
      fields.notes = r.notes;
      lines.push(config.columns.map(function (c) { return tsvCell(fields[c]); }).join("\t"));
    });
    return lines.join("\n") + "\n";
  }
  document.getElementById("export").addEventListener("click", function () {
    var blob = new Blob([ratingsTSV()], { type: "text/tab-separated-values" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "ratings_" + config.suffix + ".tsv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  });
  window.mmrqaRatingsTSV = ratingsTSV;
  refreshCount();
  applyFilter();
}());
