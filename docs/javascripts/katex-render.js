// Typeset every formula that pymdownx.arithmatex marked (generic mode) with KaTeX, which the
// site serves itself (docs/math_assets.py copies it into site/katex/): no network needed.
function jtapeRenderMath(root) {
  root.querySelectorAll(".arithmatex").forEach(function (el) {
    if (el.dataset.rendered) return;
    var tex = el.textContent.trim();
    var display = el.tagName === "DIV";
    tex = tex.replace(/^\\[\(\[]/, "").replace(/\\[\)\]]$/, "");
    katex.render(tex, el, { displayMode: display, throwOnError: false, strict: "ignore" });
    el.dataset.rendered = "1";
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(function () { jtapeRenderMath(document); });  // Material's page-load stream
} else {
  document.addEventListener("DOMContentLoaded", function () { jtapeRenderMath(document); });
}
