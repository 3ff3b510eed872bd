// gradspec book: with ?overflow, lists every element of the main column whose content is
// wider than its box (scrollWidth > clientWidth), in `data-overflow` on <body>, for the
// Chromium test ("nothing is clipped"). Without ?overflow it does nothing.
"use strict";
(function () {
  if (!new URLSearchParams(location.search).has("overflow")) return;
  function check() {
    const main = document.querySelector("main");
    const bad = [];
    if (main) {
      for (const el of [main, ...main.querySelectorAll("*")]) {
        // Shapes and text inside an <svg> are not CSS boxes and cannot clip; the <svg> itself
        // is checked like any element.
        if (el instanceof SVGElement && el.ownerSVGElement) continue;
        if (el.scrollWidth > el.clientWidth && el.clientWidth > 0) {
          const id = el.id ? "#" + el.id : "";
          const label = el.closest("[id]");
          bad.push(el.tagName.toLowerCase() + id + " in #" + (label ? label.id : "?") + ": " +
            el.scrollWidth + " > " + el.clientWidth);
        }
      }
    }
    document.body.dataset.overflow = JSON.stringify(bad);
    document.body.dataset.mainWidth = main ? String(main.clientWidth) : "0";
  }
  if (document.readyState === "complete") check();
  else window.addEventListener("load", check);
})();
