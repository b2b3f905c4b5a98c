// Keyboard shortcuts, listed in a dialog on "?" (or the ? button in the header). "/" goes to the quick search.

import { h } from "./dom.js";

export const SHORTCUTS = [
  ["Anywhere", [
    [["?"], "Show or hide this list"],
    [["/"], "Go to the quick search"],
    [["Esc"], "Close this list"],
  ]],
  ["Image tools (on the image)", [
    [["W"], "Window/level: drag to change contrast and brightness"],
    [["P"], "Pan (or drag with Shift, the middle or the right button)"],
    [["L"], "Length"],
    [["A"], "Angle: first end, vertex, second end"],
    [["R"], "Rectangle ROI"],
    [["E"], "Ellipse ROI"],
    [["F"], "Line profile"],
    [["Esc"], "Cancel the measurement being drawn"],
    [["Delete"], "Withdraw the last measurement"],
  ]],
  ["View", [
    [["+", "−"], "Zoom in, zoom out (or the mouse wheel)"],
    [["0"], "Fit the image"],
    [["←", "→", "↑", "↓"], "Pan"],
    [["I"], "Invert"],
    [["]", "["], "Rotate 90° clockwise, anticlockwise"],
    [["H", "V"], "Flip horizontally, vertically"],
    [["1", "2", "3"], "Window: stored, full range, auto (histogram)"],
    [["O"], "Information overlay on or off"],
  ]],
  ["Frames and slices", [
    [["PageUp", "PageDown"], "Previous, next frame (also , and .)"],
    [["Shift", "wheel"], "Scroll through the frames"],
    [["Space"], "Cine: play or stop"],
  ]],
];

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

let dialog = null;

function build() {
  const groups = SHORTCUTS.map(([title, rows]) => h("section", {},
    h("h3", {}, title),
    h("table", {}, h("tbody", {}, rows.map(([keys, what]) => h("tr", {},
      h("th", { scope: "row" }, keys.map((k, i) => [i ? " " : null, h("kbd", {}, k)])),
      h("td", {}, what)))))));
  const close = h("button", { type: "button", class: "close", onclick: () => dialog.close() }, "Close");
  dialog = h("dialog", { id: "shortcuts", "aria-labelledby": "shortcuts-title" },
    h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"), h("div", { class: "groups" }, groups), close);
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); }); // a click beside the list
  document.body.append(dialog);
}

/** Show the list of shortcuts (or hide it when shown). */
export function toggleShortcuts() {
  if (!dialog) build();
  if (dialog.open) dialog.close();
  else dialog.showModal();
}

/** Listen for "?" and "/" everywhere except while typing into a field; add the ? button to the header. */
export function installShortcuts() {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "?") { e.preventDefault(); toggleShortcuts(); }
    else if (e.key === "/" && !dialog?.open) { e.preventDefault(); document.getElementById("quick-q")?.focus(); }
  });
  const button = h("button", { type: "button", id: "help", title: "Keyboard shortcuts (?)", "aria-label": "Keyboard shortcuts", onclick: () => toggleShortcuts() }, "?");
  document.querySelector("header.top")?.append(button);
}
