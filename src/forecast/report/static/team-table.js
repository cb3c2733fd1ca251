var table = document.getElementById("team-table");
if (table) {
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = table.tHead.rows[0].cells;
  var count = document.getElementById("team-count");
  var search = document.getElementById("team-filter");
  var band = document.getElementById("band-filter");
  var sortBy = function (th) {
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
  };
  for (var i = 0; i < heads.length; i++) {
    (function (th) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(th); }); }
    })(heads[i]);
  }
  var filter = function () {
    var q = search.value.trim().toLowerCase(), b = band.value, shown = 0;
    rows.forEach(function (r) {
      var ok = (!q || r.getAttribute("data-team").toLowerCase().indexOf(q) >= 0) &&
               (!b || r.getAttribute("data-bandname") === b);
      r.hidden = !ok;
      if (ok) { shown++; }
    });
    count.textContent = shown + " of " + rows.length + " teams";
  };
  search.addEventListener("input", filter);
  band.addEventListener("change", filter);
  filter();
}
