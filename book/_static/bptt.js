// BPTT, derived: pydata-sphinx-theme 0.17.1 starts a first-time visitor (nothing in
// localStorage) in the mode "" and logs "Got invalid theme mode" as a console error before
// falling back to "auto". Start in "auto" directly. Runs in <head>, before the theme's script.
(function () {
  var root = document.documentElement;
  if (!root.dataset.mode) {
    root.dataset.mode = "auto";
  }
})();
