// forecast serve: the only script, served from this server (the Content Security Policy allows
// no inline script). Sorting and filtering of the teams table, and the what-if form's range.
(function () {
  "use strict";

  function wireTable(table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = table.tHead.rows[0].cells;
    var count = document.getElementById("team-count");
    var search = document.getElementById("team-filter");
    var band = document.getElementById("band-filter");
    function sortBy(th) {
      var key = th.getAttribute("data-key");
      var numeric = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      if (th.getAttribute("aria-sort") === null && numeric && key !== "rank" && key !== "band") {
        dir = key === "csat" ? "ascending" : "descending";
      }
      for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
      th.setAttribute("aria-sort", dir);
      var sign = dir === "ascending" ? 1 : -1;
      rows.sort(function (a, b) {
        var x = a.getAttribute("data-" + key), y = b.getAttribute("data-" + key);
        if (numeric) { return sign * (parseFloat(x) - parseFloat(y)); }
        return sign * x.localeCompare(y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    Array.prototype.forEach.call(heads, function (th) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(th); }); }
    });
    function filter() {
      var q = search.value.trim().toLowerCase(), b = band.value, shown = 0;
      rows.forEach(function (r) {
        var ok = (!q || r.getAttribute("data-team").toLowerCase().indexOf(q) >= 0) &&
                 (!b || r.getAttribute("data-bandname") === b);
        r.hidden = !ok;
        if (ok) { shown++; }
      });
      count.textContent = shown + " of " + rows.length + " teams";
    }
    if (search && band && count) {
      search.addEventListener("input", filter);
      band.addEventListener("change", filter);
      filter();
    }
  }

  function wireWhatIf(select) {
    var input = document.getElementById("what-if-value");
    if (!input) { return; }
    select.addEventListener("change", function () {
      var o = select.options[select.selectedIndex];
      input.min = o.getAttribute("data-low");
      input.max = o.getAttribute("data-high");
      input.value = o.getAttribute("data-median");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("team-table");
    if (table) { wireTable(table); }
    var select = document.getElementById("what-if-signal");
    if (select) { wireWhatIf(select); }
    document.documentElement.setAttribute("data-ready", "ok");
  });
})();
