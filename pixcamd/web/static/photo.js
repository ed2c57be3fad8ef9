// The photo page: the two 100 % viewports pan together (scroll, or drag with the mouse); a
// click on either photo above centres both viewports there. Buttons that ship or remove ask
// first.
"use strict";
(function () {
  const a = document.getElementById("zoom-original");
  const b = document.getElementById("zoom-copy");
  if (a && b) {
    document.getElementById("zoom-together").textContent =
      " Both move together: drag either, or click a photo above to look there.";
    // the other viewport's own scroll event then finds them equal: no echo
    const follow = (from, to) => () => {
      if (to.scrollLeft !== from.scrollLeft) to.scrollLeft = from.scrollLeft;
      if (to.scrollTop !== from.scrollTop) to.scrollTop = from.scrollTop;
    };
    a.addEventListener("scroll", follow(a, b));
    b.addEventListener("scroll", follow(b, a));
    for (const view of [a, b]) {
      let drag = null;
      view.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, view.scrollLeft, view.scrollTop]; e.preventDefault(); });
      window.addEventListener("mouseup", () => { drag = null; });
      view.addEventListener("mousemove", (e) => {
        if (!drag) return;
        view.scrollLeft = drag[2] - (e.clientX - drag[0]);
        view.scrollTop = drag[3] - (e.clientY - drag[1]);
      });
    }
    for (const id of ["original", "copy"]) {
      const img = document.getElementById(id);
      if (!img) continue;
      img.addEventListener("click", (e) => {
        const r = img.getBoundingClientRect();
        const x = (e.clientX - r.left) / r.width * img.naturalWidth;
        const y = (e.clientY - r.top) / r.height * img.naturalHeight;
        a.scrollLeft = x - a.clientWidth / 2; a.scrollTop = y - a.clientHeight / 2;
        b.scrollLeft = a.scrollLeft; b.scrollTop = a.scrollTop;
      });
    }
  }
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (e) => { if (!confirm(button.dataset.confirm)) e.preventDefault(); });
  }
})();
