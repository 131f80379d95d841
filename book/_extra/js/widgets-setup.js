// Loaded on pages with saved ipywidgets state, after require.js and before the widget
// manager (see nb_ipywidgets_js in _config.yml). Everything it points to is on this site.
(function () {
  "use strict";

  // This script's own folder (.../js/), whatever the page's depth in the site.
  var here = document.currentScript.src.split("?")[0];
  var site = here.slice(0, here.lastIndexOf("/js/") + 1);

  // The widget manager (html-manager, AMD build) locates its fonts from the address of
  // its own module. Map the module name to the vendored copy so that address is
  // vendor/html-manager/ instead of a path relative to the page.
  // Widget front ends the book vendors beside it are mapped here the same way.
  window.requirejs.config({
    paths: {
      "@jupyter-widgets/html-manager/dist": site + "vendor/html-manager",
    },
  });

  // ipywidgets' controls typeset a label's LaTeX with the MathJax 2 call
  // MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). The book loads MathJax 3, which
  // has no Hub; give it the one call, mapped to MathJax 3's typesetPromise. MathJax is a
  // deferred script, so it exists by DOMContentLoaded, which fires before the widget
  // manager (registered after this listener) renders anything.
  document.addEventListener("DOMContentLoaded", function () {
    var mathjax = window.MathJax;
    if (!mathjax || mathjax.Hub || !mathjax.typesetPromise) {
      return;
    }
    mathjax.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        mathjax.startup.promise.then(function () {
          return mathjax.typesetPromise(element ? [element] : undefined);
        });
      },
    };
  });
})();
