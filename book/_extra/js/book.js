/* The book's own behaviour, on every page (added by book/_ext/light_pages.py).
 *
 * 1. A solution's title ("Solution to Exercise 4.1 (...)") links to its exercise.
 *    sphinx-togglebutton makes the whole title open and close the solution, but its click
 *    handler knows only the title, the button and the chevron: a click on the link reached
 *    it as an unknown target and threw "ReferenceError: button is not defined", after the
 *    browser had already jumped away. A plain click on the link now opens or closes the
 *    solution like the rest of the title; Ctrl/Cmd-click and middle-click still follow it.
 * 2. Over file:// the browser refuses the requests that fetch search snippets (CORS), so
 *    the search page shows titles only: it says so, and that `make serve` gives the rest.
 */
(() => {
  "use strict";
  const overFile = window.location.protocol === "file:";

  // Read by Sphinx's searchtools.js when it shows results; over file:// every snippet
  // request would fail with a console error. (A top-level const of documentation_options.js,
  // so not a property of window.)
  if (overFile && typeof DOCUMENTATION_OPTIONS !== "undefined") {
    DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
  }

  document.addEventListener(
    "click",
    (event) => {
      const link = event.target.closest(".admonition.toggle > .admonition-title a");
      if (!link) return;
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      event.stopPropagation();
      // a click on the title itself is the case sphinx-togglebutton handles
      link.closest(".admonition-title").click();
    },
    true,
  );

  const onReady = (callback) =>
    document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", callback) : callback();

  onReady(() => {
    if (!overFile || !document.getElementById("search-results")) return;
    const note = document.createElement("p");
    note.className = "book-search-note";
    note.innerHTML =
      "This page was opened from a file, so the browser does not let search read the " +
      "chapters: results show titles only. For results with the text around each match, " +
      "serve the book with <code>make serve</code> and open " +
      "<a href=\"http://localhost:8000/search.html\">http://localhost:8000/search.html</a>.";
    const results = document.getElementById("search-results");
    results.parentNode.insertBefore(note, results);
  });
})();
