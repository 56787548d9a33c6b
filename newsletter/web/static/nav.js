/* The phone menu: a button that shows and hides the navigation (aria-expanded kept in
   step; Escape closes it). Wide screens never see the button (CSS). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var button = document.querySelector(".nav-toggle");
  var nav = document.getElementById("main-nav");
  if (!button || !nav) { return; }
  button.hidden = false;
  function set(open) {
    nav.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  button.addEventListener("click", function () { set(!nav.classList.contains("open")); });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && nav.classList.contains("open")) { set(false); button.focus(); }
  });
}());
