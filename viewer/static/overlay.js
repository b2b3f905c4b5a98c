// The information overlay on the image, as on every radiography viewer: which component, which
// inspection, which technique and which frame the inspector is looking at. Toggled with O or the
// Overlay button; the choice holds for the other images while the page is open (nothing is kept in
// the browser's storage). Text only (textContent), never HTML.

import { fmtDate, fmtName, h, mount } from "./dom.js";

let shown = true; // the last choice, for the next image

// Exposure and geometry attributes an RT technique is described by, in the order they are read.
const TECHNIQUE = [
  ["KVP", (v) => `${v} kV`],
  ["XRayTubeCurrent", (v) => `${v} mA`],
  ["XRayTubeCurrentInuA", (v) => `${v} µA`],
  ["ExposureTime", (v) => `${v} ms`],
  ["Exposure", (v) => `${v} mAs`],
  ["DistanceSourceToDetector", (v) => `SDD ${v} mm`],
  ["FocalSpots", (v) => `focal spot ${v} mm`],
];

export class Overlay {
  /** An overlay over *stage* for the inspection and series in *context* ({inspection, series}). */
  constructor(stage, context) {
    this.context = context;
    this.corners = Object.fromEntries(["tl", "tr", "bl", "br"].map((c) => [c, h("div", { class: `corner ${c}` })]));
    this.el = h("div", { class: "overlay", role: "group", "aria-label": "Image information" }, Object.values(this.corners));
    stage.append(this.el);
    this.setVisible(shown);
  }

  get visible() { return !this.el.hidden; }

  setVisible(on) {
    this.el.hidden = !on;
    shown = on;
    if (this.button) this.button.setAttribute("aria-pressed", String(on));
  }

  toggle() { this.setVisible(!this.visible); }

  /** The toolbar button that shows and hides the overlay. */
  toggleButton() {
    this.button = h("button", { type: "button", class: "overlay-toggle", "aria-pressed": String(this.visible), title: "Information overlay (O)", onclick: () => this.toggle() }, "Overlay");
    return this.button;
  }

  /** Show what is known about image *detail*, frame *frame* (1-based) of *frames*, place *index* of *count* in the stack. */
  update(detail, { frame, frames, index, count }) {
    const { inspection, series } = this.context;
    const tags = new Map(detail.tags.map((t) => [t.keyword, t]));
    const text = (keyword) => tags.get(keyword)?.display ?? tags.get(keyword)?.value ?? "";
    const technique = TECHNIQUE.map(([k, f]) => (text(k) ? f(text(k)) : "")).filter(Boolean).join(" · ");
    const line = (cls, value) => (value ? h("div", { class: cls }, value) : null);
    mount(this.corners.tl,
      line("serial", inspection.component.serial),
      line("component", fmtName(inspection.component.name)),
      line("material", inspection.component.material || ""));
    mount(this.corners.tr,
      line("date", `Inspected ${fmtDate(inspection.date) || "(no date)"}${inspection.time ? ` ${inspection.display?.time || ""}` : ""}`.trim()),
      line("technique", [detail.modality || series.modality, series.description].filter(Boolean).join(" · ")),
      line("exposure", technique));
    const position = frames > 1 ? `Frame ${frame} / ${frames}` : count > 1 ? `Image ${index + 1} / ${count} · frame 1 / 1` : "Frame 1 / 1";
    mount(this.corners.bl, line("frame", position), line("size", `${detail.columns} × ${detail.rows} px`));
    mount(this.corners.br, line("calibration", detail.spacing ? detail.spacing.display : "not calibrated: measurements in pixels"));
  }
}
