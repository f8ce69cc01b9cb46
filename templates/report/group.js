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
    if ("rating" in change) { renderQueue(); }
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

  /* ---- rate next: the ranking of mmrqa_bids.ratings_queue.rate_next, recomputed live ----
     priority = u / max u + d / max d over the unrated runs, u = 1 - margin of the two most
     probable grades, d = RMS z distance to the nearest rated run (none rated: to the cohort
     centre, z = 0); greedy, each pick counted as rated for the next. */
  var queue = JSON.parse(document.getElementById("mmrqa-queue").textContent);
  /* positions: one signed byte per run and metric, in tenths of a robust z (reports.group.
     encode_positions); the missing marker becomes null */
  queue.z = (function () {
    var bytes = atob(queue.z_b64), m = queue.n_features, out = [], i, j;
    for (i = 0; i < queue.names.length; i++) {
      var row = [];
      for (j = 0; j < m; j++) {
        var b = bytes.charCodeAt(i * m + j), v = b > 127 ? b - 256 : b;
        row.push(v === queue.missing ? null : v * 0.1);
      }
      out.push(row);
    }
    return out;
  }());
  function uncertainty(p) {
    if (!p || p.length < 2 || p.some(function (v) { return v === null; })) { return 1; }
    var top = p.slice().sort(function (a, b) { return b - a; });
    return Math.min(1, Math.max(0, 1 - (top[0] - top[1])));
  }
  function rms(a, b) {
    var s = 0, n = 0;
    for (var j = 0; j < a.length; j++) {
      if (a[j] !== null && b[j] !== null) { var d = a[j] - b[j]; s += d * d; n += 1; }
    }
    return n ? Math.sqrt(s / n) : queue.no_shared;
  }
  /* Each run's distance to the nearest rated run (none rated: to the cohort centre), kept
     between ratings: a newly rated run updates it with its own distances only (runs x
     metrics, not runs x rated x metrics on every click); a rating taken back recomputes it.
     min() is exact, so the kept values are those of a recomputation; each distance sums
     its metrics left to right (rms), as ratings_queue.rms_distance does. */
  var kept = null;  /* {seen: rated flags the distances are for, any: one rated, dist} */
  function nearestRated(seen) {
    var n = queue.names.length, j, i, any = seen.indexOf(true) >= 0, added = [], dist;
    var prev = kept;
    for (j = 0; prev && j < n; j++) {
      if (prev.seen[j] && !seen[j]) { prev = null; }  /* a rating taken back */
      else if (seen[j] && !prev.seen[j]) { added.push(j); }
    }
    if (prev && prev.any === any && (any || !added.length)) {
      dist = prev.dist.slice();  /* (the same runs rated, or more: updated below) */
    } else {
      added = [];
      dist = [];
      var centre = [];
      for (j = 0; j < queue.n_features; j++) { centre.push(0); }
      for (j = 0; j < n; j++) { dist.push(any ? Infinity : rms(queue.z[j], centre)); }
      for (i = 0; i < n; i++) { if (any && seen[i]) { added.push(i); } }
    }
    added.forEach(function (i) {
      for (var j = 0; j < n; j++) { dist[j] = Math.min(dist[j], rms(queue.z[j], queue.z[i])); }
    });
    kept = { seen: seen.slice(), any: any, dist: dist.slice() };
    return dist;
  }
  function rateNext(ratedNameSet, k) {
    var n = queue.names.length, seen = [], u = [], picks = [], j;
    for (j = 0; j < n; j++) {
      seen.push(!!ratedNameSet[queue.names[j]]);
      u.push(uncertainty(queue.p[j]));
    }
    var anyRated = seen.indexOf(true) >= 0, dist = nearestRated(seen);
    while (picks.length < k) {
      var cand = [];
      for (j = 0; j < n; j++) { if (!seen[j]) { cand.push(j); } }
      if (!cand.length) { break; }
      var maxU = 0, maxD = 0;
      cand.forEach(function (c) { maxU = Math.max(maxU, u[c]); maxD = Math.max(maxD, dist[c]); });
      var top = -1, topScore = -Infinity, su = 0, sd = 0;
      cand.forEach(function (c) {
        var a = maxU > 0 ? u[c] / maxU : 0, b = maxD > 0 ? dist[c] / maxD : 0;
        if (a + b > topScore) { top = c; topScore = a + b; su = a; sd = b; }
      });
      picks.push({ index: top, margin: 1 - u[top], distance: dist[top], su: su, sd: sd, anyRated: anyRated });
      for (j = 0; j < n; j++) {
        var d = rms(queue.z[j], queue.z[top]);
        dist[j] = anyRated ? Math.min(dist[j], d) : d;
      }
      anyRated = true;
      seen[top] = true;
    }
    return picks;
  }
  function ratedSet() {
    var out = {};
    ratedNames().forEach(function (n) { out[n] = true; });
    return out;
  }
  var gradeOf = {};
  Array.prototype.forEach.call(runsTable.tBodies[0].rows, function (row) {
    gradeOf[row.getAttribute("data-run")] = row.getAttribute("data-grade");
  });
  function jumpTo(name) {
    var row = null;
    Array.prototype.forEach.call(runsTable.tBodies[0].rows, function (r) {
      if (r.getAttribute("data-run") === name) { row = r; }
    });
    if (!row) { return; }
    if (row.hidden) {  /* a filter hides it: clear the filters */
      filter.value = ""; gradeFilter.value = ""; outliersOnly.checked = false; unratedOnly.checked = false;
      applyFilter();
    }
    row.scrollIntoView({ block: "center" });
    row.classList.add("jumped");
    setTimeout(function () { row.classList.remove("jumped"); }, 1500);
    var button = row.querySelector(".rate button");
    if (button) { button.focus({ preventScroll: true }); }
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function renderQueue() {
    var body = document.getElementById("rate-next-table").tBodies[0];
    var picks = rateNext(ratedSet(), queue.size);
    body.textContent = "";
    picks.forEach(function (pick, i) {
      var name = queue.names[pick.index], tr = document.createElement("tr");
      tr.setAttribute("data-run", name);
      cell(tr, String(i + 1), "num");
      var a = document.createElement("a");
      a.href = "#review"; a.className = "jump"; a.textContent = name;
      a.setAttribute("data-run", name);
      a.addEventListener("click", function (ev) { ev.preventDefault(); jumpTo(name); });
      cell(tr, "").appendChild(a);
      var badge = document.createElement("span"), grade = gradeOf[name] || "n/a";
      badge.className = "badge " + (grade === "n/a" ? "na" : grade);
      badge.textContent = grade;
      cell(tr, "").appendChild(badge);
      cell(tr, pick.margin.toFixed(2), "num");
      cell(tr, pick.distance.toFixed(2), "num");
      cell(tr, pick.su >= pick.sd ? "uncertain grade"
        : pick.anyRated ? "unlike the runs rated so far" : "far from its cohort's centre", "why");
      body.appendChild(tr);
    });
    document.getElementById("rate-next-done").hidden = picks.length > 0;
  }
  window.mmrqaRateNext = function () {
    return rateNext(ratedSet(), queue.size).map(function (p) { return queue.names[p.index]; });
  };

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
      fields.rating = (config.scales[scaleSelect.value] || {})[r.rating] || r.rating;
      fields.artifact = r.artifact && r.artifact !== "none" ? r.artifact : "n/a";
      fields.notes = r.notes;
      lines.push(config.columns.map(function (c) { return tsvCell(fields[c]); }).join("\t"));
    });
    return lines.join("\n") + "\n";
  }
  var scaleSelect = document.getElementById("rating-scale");
  try { scaleSelect.value = window.localStorage.getItem(storeKey + ":scale") || "grades"; } catch (e) { /* keep */ }
  if (!scaleSelect.value) { scaleSelect.value = "grades"; }
  scaleSelect.addEventListener("change", function () {
    try { window.localStorage.setItem(storeKey + ":scale", scaleSelect.value); } catch (e) { /* in memory */ }
  });
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
  renderQueue();
  applyFilter();
}());
