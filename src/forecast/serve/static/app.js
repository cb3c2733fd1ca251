// forecast serve: its own script, served from this server (the Content Security Policy allows
// no inline script): the what-if form's range. The teams table's sorting and filtering is the
// report's team-table.js, loaded as a module beside this one.
(function () {
  "use strict";

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
    var select = document.getElementById("what-if-signal");
    if (select) { wireWhatIf(select); }
    // Set after every deferred and module script has run, team-table.js included.
    document.documentElement.setAttribute("data-ready", "ok");
  });
})();
