// The image viewer: raw frames in typed arrays, window/level by lookup table, view transform,
// frames/slices, cine, and measurements kept on the image as annotations in the archive (/api/).

import { getJSON, getPixels, may, postJSON } from "./api.js";
import { h, mount, status } from "./dom.js";
import { angle, length, plotProfile, profile, roi, valueAt } from "./measure.js";
import { Overlay } from "./overlay.js";
import { reduceFrame, renderFrame, statistics } from "./render.js";

const PREVIEW_MAX = 1024; // preview edge (pixels) for big images
const FULL_NOW_MAX = 4096; // images up to this edge load full resolution right after the preview
const TOOLS = [ // id, name (in the button's title), shortcut key, the button's short text (one toolbar row at 1366 px)
  ["wl", "Window/level", "w", "W/L"], ["pan", "Pan", "p", "Pan"], ["length", "Length", "l", "Length"], ["angle", "Angle", "a", "Angle"],
  ["rect", "Rectangle ROI", "r", "Rect"], ["ellipse", "Ellipse ROI", "e", "Ellipse"], ["profile", "Line profile", "f", "Profile"],
];
const MEASURING = new Set(["length", "angle", "rect", "ellipse", "profile"]); // kept in the archive: annotations:write
const NEEDS_ANNOTATE = "needs-annotations-write"; // hidden (style.css) unless the user may annotate

/** Whether rectangle *a* contains rectangle *b* (an empty *b* is contained in anything). */
function covers(a, b) {
  return b.x1 <= b.x0 || b.y1 <= b.y0 || (a.x0 <= b.x0 && a.y0 <= b.y0 && a.x1 >= b.x1 && a.y1 >= b.y1);
}

export class Viewer {
  /** stack: [{sop, frame}] in display order; index: the one to show first. */
  constructor(root, stack, index, context) {
    this.root = root;
    this.stack = stack;
    this.index = index;
    this.context = context;
    this.details = new Map(); // sop -> InstanceDetail
    this.frames = new Map(); // "sop/frame/scale" -> frame
    this.tool = "wl";
    this.view = { zoom: 1, panX: 0, panY: 0, rotation: 0, flipH: false, flipV: false, invert: false };
    this.win = null; // {center, width}
    this.preset = "stored";
    this.pending = null; // measurement being drawn
    this.annotations = []; // the current image's measurements, as kept in the archive
    this.cine = null;
    this.offscreen = document.createElement("canvas");
    this.overlays = []; // extra drawings over the image: functions (ctx) (indications.js)
    this.imageListeners = []; // called with the detail whenever another image is shown (indications.js)
    this.build();
    window.viewer = this; // for tests and the console
  }

  // -- layout -----------------------------------------------------------------
  build() {
    this.canvas = h("canvas", { class: "view", tabindex: "0", "aria-label": "Image. Keys: arrows pan, + - zoom, 0 fit, PageUp/PageDown frame, I invert, O overlay, ? all shortcuts." });
    this.toolButtons = TOOLS.map(([id, label, key, short]) =>
      h("button", { type: "button", "data-tool": id, class: MEASURING.has(id) ? NEEDS_ANNOTATE : null, "aria-pressed": "false", title: `${label} (${key.toUpperCase()})`, onclick: () => this.setTool(id) }, short));
    this.presetSelect = h("select", { "aria-label": "Window preset", onchange: () => this.applyPreset(this.presetSelect.value) },
      h("option", { value: "stored" }, "Stored window"), h("option", { value: "full" }, "Full range"), h("option", { value: "auto" }, "Auto (histogram)"));
    this.frameSlider = h("input", { type: "range", min: "1", max: String(this.stack.length), value: String(this.index + 1), "aria-label": "Frame", oninput: () => this.go(Number(this.frameSlider.value) - 1) });
    this.frameLabel = h("span", { class: "frame-label" });
    this.cineButton = h("button", { type: "button", onclick: () => this.toggleCine(), title: "Cine (Space)" }, "▶ Cine");
    const bar = h("div", { class: "toolbar", role: "toolbar", "aria-label": "Viewer tools" },
      this.toolButtons,
      h("span", { class: "sep" }),
      this.presetSelect,
      h("button", { type: "button", onclick: () => this.toggleInvert(), title: "Invert (I)" }, "Invert"),
      h("button", { type: "button", onclick: () => this.rotate(90), title: "Rotate (])" }, "⟳ 90°"),
      h("button", { type: "button", onclick: () => this.flip("h"), title: "Flip horizontal (H)" }, "Flip H"),
      h("button", { type: "button", onclick: () => this.flip("v"), title: "Flip vertical (V)" }, "Flip V"),
      h("button", { type: "button", onclick: () => this.fit(), title: "Fit (0)" }, "Fit"),
      h("button", { type: "button", onclick: () => this.zoomBy(1.25), title: "Zoom in (+)" }, "+"),
      h("button", { type: "button", onclick: () => this.zoomBy(0.8), title: "Zoom out (-)" }, "−"),
      h("span", { class: "sep" }),
      this.overlaySlot = h("span"),
    );
    const frames = this.stack.length > 1
      ? h("div", { class: "frames" }, h("button", { type: "button", onclick: () => this.step(-1), title: "Previous (PageUp)" }, "◀"), this.frameSlider,
        h("button", { type: "button", onclick: () => this.step(1), title: "Next (PageDown)" }, "▶"), this.frameLabel, this.cineButton)
      : null;
    this.info = h("div", { class: "readout", "aria-live": "off" });
    this.winInfo = h("div", { class: "readout" });
    this.list = h("ol", { class: "annotations", "aria-label": "Measurements" });
    this.notice = h("p", { class: "error notice", role: "alert" });
    this.notice.hidden = true;
    this.plot = h("canvas", { class: "plot", width: "300", height: "140", "aria-label": "Line profile plot" });
    this.plot.hidden = true;
    this.tags = h("div", { class: "tags" });
    this.calibration = h("p", { class: "calibration" });
    const side = h("aside", { class: "side" },
      h("h2", {}, "Measurements"), this.calibration, this.notice, this.list, this.plot,
      h("button", { type: "button", class: NEEDS_ANNOTATE, onclick: () => this.clearAnnotations(), title: "Withdraw every measurement on this image" }, "Clear measurements"),
      h("details", {}, h("summary", {}, "Attributes"), this.tags));
    this.stage = h("div", { class: "stage" }, this.canvas);
    this.infoOverlay = new Overlay(this.stage, this.context);
    this.overlaySlot.replaceWith(this.infoOverlay.toggleButton());
    mount(this.root, h("div", { class: "viewer" }, h("div", { class: "left" }, bar, frames, this.stage, h("div", { class: "status-line" }, this.info, this.winInfo)), side));
    this.bindEvents();
    this.setTool("wl");
    new ResizeObserver(() => this.resize()).observe(this.stage);
  }

  setTool(id) {
    if (MEASURING.has(id) && !may("annotations:write")) return;
    this.tool = id;
    this.pending = null;
    for (const b of this.toolButtons) b.setAttribute("aria-pressed", String(b.dataset.tool === id));
    this.canvas.dataset.tool = id;
  }

  resize() {
    const r = this.stage.getBoundingClientRect();
    this.canvas.width = Math.max(50, Math.floor(r.width));
    this.canvas.height = Math.max(50, Math.floor(r.height));
    if (this.detail && !this.fitted) this.fit();
    this.draw();
  }

  // -- loading ----------------------------------------------------------------
  async detailOf(sop) {
    if (!this.details.has(sop)) this.details.set(sop, await getJSON(`/api/images/${sop}`));
    return this.details.get(sop);
  }

  async fetchFrame(detail, frame, scale) {
    const key = `${detail.uid}/${frame}/${scale}`;
    if (!this.frames.has(key)) {
      const url = detail.pixels_url.replace("{frame}", String(frame)) + (scale > 1 ? `?scale=${scale}` : "");
      this.frames.set(key, getPixels(url));
      if (this.frames.size > 400) this.frames.delete(this.frames.keys().next().value);
    }
    return this.frames.get(key);
  }

  async go(index) {
    index = Math.max(0, Math.min(this.stack.length - 1, index));
    this.index = index;
    const item = this.stack[index];
    const token = (this.token = {});
    this.frameSlider.value = String(index + 1);
    this.frameLabel.textContent = `${index + 1} / ${this.stack.length}`;
    this.root.dataset.frame = String(index + 1);
    try {
      const detail = await this.detailOf(item.sop);
      if (token !== this.token) return;
      const edge = Math.max(detail.rows, detail.columns);
      const previewScale = edge > 2 * PREVIEW_MAX ? Math.ceil(edge / PREVIEW_MAX) : 1;
      const first = await this.fetchFrame(detail, item.frame, previewScale);
      if (token !== this.token) return;
      this.show(detail, first, item);
      if (previewScale > 1 && edge <= FULL_NOW_MAX) this.loadFull();
    } catch (err) {
      status(`Cannot load image: ${err.message}`);
    }
  }

  async loadFull() {
    if (!this.detail || !this.current || this.current.scale === 1 || this.loadingFull) return;
    const detail = this.detail, item = this.item;
    this.loadingFull = true;
    status("Loading full resolution…");
    try {
      const full = await this.fetchFrame(detail, item.frame, 1);
      if (this.detail === detail && this.item === item) this.show(detail, full, item);
      status("");
    } finally {
      this.loadingFull = false;
    }
  }

  show(detail, frame, item) {
    const changedImage = this.detail?.uid !== detail.uid;
    this.detail = detail;
    this.item = item;
    this.current = frame;
    this.slope = detail.rescale_slope || 1;
    this.intercept = detail.rescale_intercept || 0;
    this.stats = statistics(frame, this.slope, this.intercept);
    if (!this.win) {
      // The first image sets the window; scrolling a stack keeps it.
      this.view.invert = detail.photometric === "MONOCHROME1";
      this.applyPreset(detail.windows.length ? "stored" : "auto", false);
    }
    if (changedImage) { this.loadAnnotations(); for (const listener of this.imageListeners) listener(detail); }
    if (!this.fitted) this.fit();
    this.render();
    this.root.dataset.loaded = frame.scale === 1 ? "full" : "preview";
    this.showTags(detail);
    const multi = detail.frames > 1;
    this.infoOverlay.update(detail, { frame: item.frame, frames: detail.frames, index: multi ? item.frame - 1 : this.index, count: multi ? detail.frames : this.stack.length });
    this.calibration.textContent = detail.spacing ? detail.spacing.display : "not calibrated: measurements in pixels";
  }

  showTags(detail) {
    if (this.tagsFor === detail.uid) return;
    this.tagsFor = detail.uid;
    const rows = detail.tags.map((t) => h("tr", {}, h("td", {}, t.tag), h("td", {}, t.ndt_label || t.name), h("td", {}, t.display ?? t.value)));
    mount(this.tags, h("table", {}, h("tbody", {}, rows)));
  }

  // -- window/level -----------------------------------------------------------
  applyPreset(name, redraw = true) {
    const s = this.stats;
    if (!s) return;
    if (name === "stored" && this.detail.windows.length) this.win = { center: this.detail.windows[0].center, width: this.detail.windows[0].width };
    else if (name === "full") this.win = { center: (s.min + s.max) / 2, width: Math.max(1, s.max - s.min) };
    else { name = name === "stored" ? "auto" : name; this.win = { center: (s.low + s.high) / 2, width: Math.max(1, s.high - s.low) }; }
    this.preset = name;
    this.presetSelect.value = name;
    if (redraw) this.render();
  }

  /**
   * The frame to window for the current zoom: the loaded one, or (zoomed out, one sample per pixel)
   * a block-averaged reduction of it, so a window/level change maps about as many pixels as the
   * screen shows instead of the whole image. Measurements always use the loaded frame.
   */
  displayFrame() {
    const f = this.current;
    const d = Math.floor(1 / (this.view.zoom * f.scale));
    if (d < 2 || (f.samples || 1) !== 1) return f;
    if (this.reduced?.source !== f || this.reduced.d !== d) this.reduced = { source: f, d, frame: reduceFrame(f, d) };
    return this.reduced.frame;
  }

  /** The pixels of *frame* (decimated by frame.scale) that fall on the view canvas: {x0, y0, x1, y1}. */
  visibleRect(frame) {
    const inv = this.matrix().inverse();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [sx, sy] of [[0, 0], [this.canvas.width, 0], [0, this.canvas.height], [this.canvas.width, this.canvas.height]]) {
      const p = inv.transformPoint(new DOMPoint(sx, sy));
      x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y);
    }
    const s = frame.scale, clamp = (v, max) => Math.max(0, Math.min(max, v));
    return {
      x0: clamp(Math.floor(x0 / s) - 1, frame.columns), y0: clamp(Math.floor(y0 / s) - 1, frame.rows),
      x1: clamp(Math.ceil(x1 / s) + 1, frame.columns), y1: clamp(Math.ceil(y1 / s) + 1, frame.rows),
    };
  }

  render() {
    if (!this.current || !this.win) return;
    const frame = this.displayFrame();
    if (!this.imageData || this.imageData.width !== frame.columns || this.imageData.height !== frame.rows) {
      this.offscreen.width = frame.columns;
      this.offscreen.height = frame.rows;
      this.imageData = this.offscreen.getContext("2d").createImageData(frame.columns, frame.rows);
    }
    const r = this.visibleRect(frame); // window only what the screen shows
    renderFrame(frame, this.imageData, { ...this.win, invert: this.view.invert, slope: this.slope, intercept: this.intercept }, r);
    this.offscreen.getContext("2d").putImageData(this.imageData, 0, 0, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
    this.shown = frame;
    this.rendered = r;
    this.winInfo.textContent = `W ${this.win.width.toFixed(0)} / L ${this.win.center.toFixed(0)}${this.view.invert ? " · inverted" : ""}`;
    this.draw();
  }

  scheduleRender() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => { this.raf = 0; this.render(); });
  }

  toggleInvert() { this.view.invert = !this.view.invert; this.render(); }

  // -- view transform -----------------------------------------------------------
  matrix() {
    const v = this.view, d = this.detail;
    return new DOMMatrix()
      .translate(this.canvas.width / 2 + v.panX, this.canvas.height / 2 + v.panY)
      .scale(v.flipH ? -1 : 1, v.flipV ? -1 : 1) // flips mirror the screen, after the rotation
      .rotate(v.rotation)
      .scale(v.zoom)
      .translate(-d.columns / 2, -d.rows / 2);
  }

  screenDistance(a, b) { const p = this.toScreen(a.x, a.y), q = this.toScreen(b.x, b.y); return Math.hypot(p.x - q.x, p.y - q.y); }
  toImage(sx, sy) { const p = this.matrix().inverse().transformPoint(new DOMPoint(sx, sy)); return { x: p.x, y: p.y }; }
  toScreen(x, y) { const p = this.matrix().transformPoint(new DOMPoint(x, y)); return { x: p.x, y: p.y }; }
  /** Client (page) coordinates of image point (x, y): for tests and tooling. */
  imageToClient(x, y) { const r = this.canvas.getBoundingClientRect(); const p = this.toScreen(x, y); return { x: r.left + p.x, y: r.top + p.y }; }

  fit() {
    if (!this.detail) return;
    const turned = this.view.rotation % 180 !== 0;
    const w = turned ? this.detail.rows : this.detail.columns, hh = turned ? this.detail.columns : this.detail.rows;
    this.view.zoom = Math.min(this.canvas.width / w, this.canvas.height / hh) * 0.98;
    this.view.panX = 0; this.view.panY = 0;
    this.fitted = true;
    this.draw();
  }

  zoomBy(factor, sx = this.canvas.width / 2, sy = this.canvas.height / 2) {
    if (!this.detail) return;
    const before = this.toImage(sx, sy);
    this.view.zoom = Math.max(0.01, Math.min(64, this.view.zoom * factor));
    const after = this.toScreen(before.x, before.y);
    this.view.panX += sx - after.x; this.view.panY += sy - after.y;
    this.draw();
  }

  /** Turn the view by *deg* clockwise on the screen (a mirrored view turns its image the other way). */
  rotate(deg) {
    const mirrored = this.view.flipH !== this.view.flipV;
    this.view.rotation = (this.view.rotation + (mirrored ? -deg : deg) + 360) % 360;
    this.fit();
  }
  flip(axis) { if (axis === "h") this.view.flipH = !this.view.flipH; else this.view.flipV = !this.view.flipV; this.draw(); }

  draw() {
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.current || !this.detail) return;
    // A new frame, zoom level or newly uncovered part of the image is rendered first (render() draws).
    if (this.shown !== this.displayFrame() || !covers(this.rendered, this.visibleRect(this.shown))) { this.render(); return; }
    const m = this.matrix();
    ctx.setTransform(m);
    ctx.imageSmoothingEnabled = this.view.zoom < 1;
    // A decimated frame's samples each cover scale x scale image pixels (the last ones may overhang).
    ctx.drawImage(this.offscreen, 0, 0, this.shown.columns * this.shown.scale, this.shown.rows * this.shown.scale);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    for (const a of this.annotations || []) if (this.onCurrentFrame(a)) this.drawAnnotation(ctx, a, false);
    if (this.pending) this.drawAnnotation(ctx, this.pending, true);
    for (const overlay of this.overlays) overlay(ctx);
    if (this.current.scale > 1 && this.view.zoom * this.current.scale > 1.05) this.loadFull();
  }

  drawAnnotation(ctx, a, live) {
    const pts = a.points.map((p) => this.toScreen(p.x, p.y));
    ctx.strokeStyle = live ? "#4fc3f7" : "#ffd54a";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    if (a.kind === "rect" || a.kind === "ellipse") {
      const [p, q] = [a.points[0], a.points[1] || a.points[0]];
      const corners = [[p.x, p.y], [q.x, p.y], [q.x, q.y], [p.x, q.y]].map(([x, y]) => this.toScreen(x, y));
      if (a.kind === "rect") { corners.forEach((c, i) => (i ? ctx.lineTo(c.x, c.y) : ctx.moveTo(c.x, c.y))); ctx.closePath(); }
      else {
        for (let i = 0; i <= 64; i++) {
          const t = (i / 64) * 2 * Math.PI;
          const s = this.toScreen((p.x + q.x) / 2 + ((q.x - p.x) / 2) * Math.cos(t), (p.y + q.y) / 2 + ((q.y - p.y) / 2) * Math.sin(t));
          if (i) ctx.lineTo(s.x, s.y); else ctx.moveTo(s.x, s.y);
        }
      }
    } else {
      pts.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
    }
    ctx.stroke();
    for (const p of pts) ctx.fillRect(p.x - 2, p.y - 2, 4, 4);
    const text = caption(a);
    if (text) {
      const at = pts[pts.length - 1];
      ctx.font = "13px sans-serif";
      ctx.lineWidth = 3; ctx.strokeStyle = "#000";
      ctx.strokeText(text, at.x + 6, at.y - 6);
      ctx.fillText(text, at.x + 6, at.y - 6);
    }
  }

  // -- frames -------------------------------------------------------------------
  step(delta) { this.go((this.index + delta + this.stack.length) % this.stack.length); }

  toggleCine() {
    if (this.cine) { clearInterval(this.cine); this.cine = null; this.cineButton.textContent = "▶ Cine"; return; }
    if (this.stack.length < 2) return;
    this.cine = setInterval(() => this.step(1), 100);
    this.cineButton.textContent = "■ Stop";
  }

  destroy() { if (this.cine) clearInterval(this.cine); }

  // -- measurements -------------------------------------------------------------
  measurementFrame() {
    // Statistics use the full-resolution frame when it is loaded, else the preview.
    return { frame: this.current, scale: this.current.scale };
  }

  finish(a) {
    const d = this.detail;
    // The archive keeps points on the image only: a drag that ends outside is clamped to the edge.
    a.points = a.points.map((pt) => ({ x: Math.min(d.columns, Math.max(0, pt.x)), y: Math.min(d.rows, Math.max(0, pt.y)) }));
    const sp = this.detail.spacing;
    const { frame, scale } = this.measurementFrame();
    const [p, q, r] = a.points;
    if (a.kind === "length") a.text = length(p, q, sp).text;
    else if (a.kind === "angle") a.text = angle(p, q, r, sp).text;
    else if (a.kind === "rect" || a.kind === "ellipse") a.text = roi(frame, p, q, a.kind, sp, this.slope, this.intercept, scale).text;
    else if (a.kind === "profile") {
      const prof = profile(frame, p, q, sp, this.slope, this.intercept, scale);
      const values = prof.points.map((pt) => pt[1]);
      const f = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
      a.text = `profile, ${length(p, q, sp).text}` + (values.length ? `, min ${f(Math.min(...values))} · max ${f(Math.max(...values))}` : "");
      this.plot.hidden = false;
      plotProfile(this.plot, prof);
    }
    if (scale > 1 && (a.kind === "rect" || a.kind === "ellipse" || a.kind === "profile")) a.text += " (preview resolution)";
    this.save(a);
  }

  /** Keep measurement *a* on the image in the archive; shown as "saving" until the archive has it. */
  async save(a) {
    const detail = this.detail, item = this.item;
    const draft = { ...a, sop: detail.uid, frame: item.frame, saving: true };
    this.annotations.push(draft);
    this.renderList();
    this.draw();
    try {
      const saved = await postJSON(`/api/images/${detail.uid}/annotations`, {
        kind: draft.kind, frame: draft.frame, points: draft.points, text: draft.text.slice(0, 500),
        instance_version: detail.version,
      });
      Object.assign(draft, fromArchive(saved));
      this.tell("");
    } catch (err) {
      this.annotations = this.annotations.filter((x) => x !== draft);
      this.tell(`Measurement not saved (${draft.text}): ${err.message}`);
    }
    if (this.detail === detail) { this.renderList(); this.draw(); }
  }

  /** Show (or clear, with "") a problem with the measurements, in the side panel and the status line. */
  tell(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    if (text) status(text);
  }

  onCurrentFrame(a) { return this.item && a.sop === this.item.sop && a.frame === this.item.frame; }

  async loadAnnotations() {
    const uid = this.detail.uid;
    this.annotations = [];
    this.renderList();
    this.root.dataset.annotations = "loading";
    try {
      const page = await getJSON(`/api/images/${uid}/annotations`);
      if (this.detail?.uid !== uid) return;
      this.annotations = [...page.items.map(fromArchive), ...this.annotations.filter((a) => a.saving)];
      this.root.dataset.annotations = "loaded";
      this.tell("");
    } catch (err) {
      if (this.detail?.uid !== uid) return;
      this.root.dataset.annotations = "failed";
      this.tell(`Cannot load the measurements of this image: ${err.message}`);
    }
    this.renderList();
    this.draw();
  }

  /** Withdraw measurements *items* in the archive (they are kept there, marked withdrawn by you). */
  async withdraw(items, question) {
    const kept = items.filter((a) => !a.saving);
    if (!kept.length || !window.confirm(question)) return;
    const uid = this.detail.uid;
    try {
      for (const a of kept) {
        await postJSON(`/api/annotations/${a.id}/withdraw`, { reason: "withdrawn in the viewer" });
        this.annotations = this.annotations.filter((x) => x !== a);
      }
      this.tell("");
    } catch (err) {
      this.tell(`Measurement not withdrawn: ${err.message}`);
    }
    if (this.detail?.uid === uid) { this.renderList(); this.draw(); }
  }

  clearAnnotations() {
    const n = this.annotations.filter((a) => !a.saving).length;
    this.plot.hidden = true;
    this.withdraw(this.annotations, `Withdraw all ${n} measurement${n === 1 ? "" : "s"} on this image? The archive keeps them, marked as withdrawn by you.`);
  }

  renderList() {
    const names = { length: "Length", angle: "Angle", rect: "Rectangle", ellipse: "Ellipse", profile: "Profile" };
    const multi = this.stack.some((x) => x.frame > 1);
    mount(this.list, (this.annotations || []).map((a, i) => {
      const meta = a.saving ? "saving…"
        : [a.author ? `by ${a.author}` : "", a.created_at ? `${a.created_at.slice(0, 16).replace("T", " ")} UTC` : "",
          a.version !== this.detail?.version ? `drawn on version ${a.version}` : ""].filter(Boolean).join(" · ");
      return h("li", { class: "measurement", "data-kind": a.kind, "data-id": a.id ?? null, "aria-busy": a.saving ? "true" : null },
        h("span", { class: "kind" }, names[a.kind] || a.kind, multi ? ` (frame ${a.frame})` : ""), " ",
        a.label ? [h("span", { class: "label" }, a.label), " "] : null,
        h("span", { class: "value" }, a.text), " ",
        a.saving ? null : h("button", { type: "button", class: NEEDS_ANNOTATE, "aria-label": `Withdraw measurement ${i + 1}`, title: "Withdraw",
          onclick: () => this.withdraw([a], `Withdraw measurement ${i + 1} (${a.text})? The archive keeps it, marked as withdrawn by you.`) }, "✕"),
        h("span", { class: "meta" }, meta));
    }));
  }

  // -- input --------------------------------------------------------------------
  bindEvents() {
    const c = this.canvas;
    let drag = null;
    const pos = (e) => { const r = c.getBoundingClientRect(); return { sx: e.clientX - r.left, sy: e.clientY - r.top }; };
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => {
      if (!this.detail) return;
      c.focus();
      c.setPointerCapture(e.pointerId);
      const p = pos(e);
      const tool = e.button === 1 || e.button === 2 || e.shiftKey ? "pan" : this.tool;
      drag = { ...p, tool, win: { ...this.win }, pan: { x: this.view.panX, y: this.view.panY } };
      const ip = this.toImage(p.sx, p.sy);
      if (["length", "rect", "ellipse", "profile"].includes(tool)) this.pending = { kind: tool, points: [ip, ip] };
      else if (tool === "angle") {
        // Points: first end, vertex, second end; the last one follows the pointer until placed.
        if (this.pending?.kind === "angle") this.pending.points[this.pending.points.length - 1] = ip;
        else this.pending = { kind: "angle", points: [ip, ip] };
      }
    });
    c.addEventListener("pointermove", (e) => {
      const p = pos(e);
      this.readout(p);
      if (!drag) {
        if (this.pending?.kind === "angle") { this.pending.points[this.pending.points.length - 1] = this.toImage(p.sx, p.sy); this.draw(); }
        return;
      }
      const dx = p.sx - drag.sx, dy = p.sy - drag.sy;
      if (drag.tool === "wl") {
        const range = Math.max(1, this.stats.max - this.stats.min);
        const k = range / Math.max(200, c.width);
        this.win = { width: Math.max(1, drag.win.width + dx * k), center: drag.win.center - dy * k };
        this.preset = "custom";
        this.scheduleRender();
      } else if (drag.tool === "pan") {
        this.view.panX = drag.pan.x + dx; this.view.panY = drag.pan.y + dy; this.draw();
      } else if (this.pending) {
        this.pending.points[this.pending.points.length - 1] = this.toImage(p.sx, p.sy);
        this.draw();
      }
    });
    c.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const p = pos(e);
      const moved = Math.hypot(p.sx - drag.sx, p.sy - drag.sy) > 2;
      if (this.pending && drag.tool !== "wl" && drag.tool !== "pan") {
        this.pending.points[this.pending.points.length - 1] = this.toImage(p.sx, p.sy);
        if (this.pending.kind === "angle") {
          const pts = this.pending.points;
          if (pts.length === 3) { const a = this.pending; this.pending = null; this.finish(a); }
          else if (this.screenDistance(pts[0], pts[1]) > 2) pts.push({ ...pts[1] }); // vertex placed
        } else if (moved) { const a = this.pending; this.pending = null; this.finish(a); }
        else this.pending = null;
      }
      drag = null;
      this.draw();
    });
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.shiftKey && this.stack.length > 1) this.step(e.deltaY > 0 || e.deltaX > 0 ? 1 : -1);
      else { const p = pos(e); this.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, p.sx, p.sy); }
    }, { passive: false });
    c.addEventListener("keydown", (e) => this.key(e));
  }

  key(e) {
    const k = e.key;
    const tool = TOOLS.find(([, , key]) => key === k.toLowerCase());
    if (tool && !e.ctrlKey && !e.metaKey && !e.altKey && k !== "i") { this.setTool(tool[0]); e.preventDefault(); return; }
    const actions = {
      "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(0.8), "0": () => this.fit(),
      ArrowLeft: () => { this.view.panX += 40; this.draw(); }, ArrowRight: () => { this.view.panX -= 40; this.draw(); },
      ArrowUp: () => { this.view.panY += 40; this.draw(); }, ArrowDown: () => { this.view.panY -= 40; this.draw(); },
      PageUp: () => this.step(-1), PageDown: () => this.step(1), ",": () => this.step(-1), ".": () => this.step(1),
      i: () => this.toggleInvert(), I: () => this.toggleInvert(), "]": () => this.rotate(90), "[": () => this.rotate(-90),
      h: () => this.flip("h"), v: () => this.flip("v"), H: () => this.flip("h"), V: () => this.flip("v"), " ": () => this.toggleCine(),
      1: () => this.applyPreset("stored"), 2: () => this.applyPreset("full"), 3: () => this.applyPreset("auto"),
      o: () => this.infoOverlay.toggle(), O: () => this.infoOverlay.toggle(),
      Escape: () => { this.pending = null; this.draw(); },
      Delete: () => { const last = this.annotations.filter((a) => !a.saving).pop(); if (last) this.withdraw([last], `Withdraw the last measurement (${last.text})?`); },
    };
    const action = actions[k];
    if (action) { action(); e.preventDefault(); }
  }

  readout(p) {
    if (!this.detail || !this.current) return;
    const ip = this.toImage(p.sx, p.sy);
    const x = Math.floor(ip.x), y = Math.floor(ip.y);
    const v = valueAt(this.current, ip.x, ip.y, 1, 0, this.current.scale);
    if (v === null) { this.info.textContent = ""; return; }
    let text = `x ${x}, y ${y} · stored ${Array.isArray(v) ? v.join("/") : v}`;
    if (!Array.isArray(v) && (this.slope !== 1 || this.intercept !== 0)) text += ` · rescaled ${(v * this.slope + this.intercept).toFixed(2)}`;
    if (this.detail.spacing) text += ` · ${(ip.x * this.detail.spacing.column_mm).toFixed(2)}, ${(ip.y * this.detail.spacing.row_mm).toFixed(2)} mm`;
    if (this.current.scale > 1) text += " (preview)";
    this.info.textContent = text;
  }
}

/** A measurement from the archive's answer (AnnotationOut), in the shape the viewer draws. */
function fromArchive(a) {
  return {
    id: a.id, sop: a.image_uid, frame: a.frame, kind: a.kind, points: a.points.map((p) => ({ x: p.x, y: p.y })),
    text: a.text || `${a.value.toFixed(2)} ${a.unit}`, label: a.label, version: a.instance_version,
    author: a.author, created_at: a.created_at, saving: false,
  };
}

/** The short text drawn next to a measurement on the image. */
function caption(a) {
  if (a.label) return a.label;
  if (!a.text) return "";
  if (a.kind === "rect" || a.kind === "ellipse") return a.text.split(" · ").slice(0, 2).join(" ");
  if (a.kind === "profile") return a.text.replace(/^profile, /, "");
  return a.text;
}
