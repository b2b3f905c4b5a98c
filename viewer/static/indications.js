// Indications on the image page (issue 14): the "Indications" panel beside the image, listing the
// inspectors' indications (newest versions) and the device's; drawing a new one (point, line,
// polyline, rectangle, ellipse, polygon) with a type from /api/indication-types; editing (a new
// version, with a reason once the inspection is signed); the history of versions; selecting a row
// highlights its drawing and clicking a drawing selects its row. Every value from the archive goes
// into the DOM as text (dom.js h()).

import { getJSON, may, postJSON, putJSON } from "./api.js";
import { h, mount, status } from "./dom.js";
import { statusBadge } from "./evaluation.js";

export const KINDS = [
  ["point", "Point"], ["line", "Line"], ["polyline", "Polyline"], ["rect", "Rectangle"], ["ellipse", "Ellipse"], ["polygon", "Polygon"],
];
const MULTI = new Set(["polyline", "polygon"]); // click the points, double-click (or Enter) to finish
const MIN_POINTS = { point: 1, line: 2, polyline: 2, rect: 2, ellipse: 2, polygon: 3 };
const COLOUR = { inspector: "#ff7043", device: "#e040fb", selected: "#00e5ff", draft: "#4fc3f7" };

let typesPromise = null;
/** The indication type vocabulary (loaded once per page). */
export function indicationTypes() {
  if (!typesPromise) typesPromise = getJSON("/api/indication-types").catch((err) => { typesPromise = null; throw err; });
  return typesPromise;
}

/** "50.00 × 2.00 mm · 100.00 mm²" from the archive's sizes (no size for a point). */
export function sizeText(sizes) {
  if (!sizes) return "";
  const u = sizes.unit, f = (v) => v.toFixed(2);
  const parts = [];
  if (sizes.length != null && sizes.width != null && sizes.width > 0) parts.push(`${f(sizes.length)} × ${f(sizes.width)} ${u}`);
  else if (sizes.length != null) parts.push(`${f(sizes.length)} ${u}`);
  if (sizes.area != null && sizes.area > 0) parts.push(`${f(sizes.area)} ${u}²`);
  return parts.join(" · ");
}

function utc(value) { return value ? `${String(value).slice(0, 16).replace("T", " ")} UTC` : ""; }

/** The outline of a region in screen coordinates (a Path2D), for drawing and for hit testing. */
function shapePath(viewer, kind, points) {
  const path = new Path2D();
  const s = points.map((p) => viewer.toScreen(p.x, p.y));
  if (!s.length) return path;
  if (kind === "point") {
    path.arc(s[0].x, s[0].y, 6, 0, 2 * Math.PI);
  } else if (kind === "rect" || kind === "ellipse") {
    const [p, q] = [points[0], points[1] || points[0]];
    if (kind === "rect") {
      [[p.x, p.y], [q.x, p.y], [q.x, q.y], [p.x, q.y]].map(([x, y]) => viewer.toScreen(x, y))
        .forEach((c, i) => (i ? path.lineTo(c.x, c.y) : path.moveTo(c.x, c.y)));
      path.closePath();
    } else {
      for (let i = 0; i <= 64; i++) {
        const t = (i / 64) * 2 * Math.PI;
        const c = viewer.toScreen((p.x + q.x) / 2 + ((q.x - p.x) / 2) * Math.cos(t), (p.y + q.y) / 2 + ((q.y - p.y) / 2) * Math.sin(t));
        if (i) path.lineTo(c.x, c.y); else path.moveTo(c.x, c.y);
      }
    }
  } else {
    s.forEach((c, i) => (i ? path.lineTo(c.x, c.y) : path.moveTo(c.x, c.y)));
    if (kind === "polygon") path.closePath();
  }
  return path;
}

/** The panel, attached to a Viewer (viewer.js) on the image page. */
export class IndicationsPanel {
  constructor(viewer) {
    this.viewer = viewer;
    this.items = []; // the inspectors' indications of the current image (IndicationOut)
    this.device = []; // the device's (DeviceIndicationOut)
    this.selected = null; // {source: "inspector"|"device", key}
    this.drawing = null; // {kind, points, cursor, then} while a region is being drawn
    this.draft = null; // a drawn region waiting for its type and label
    this.signed = false; // the inspection carries a signature: a change needs a reason
    this.build();
    viewer.overlays.push((ctx) => this.paint(ctx));
    viewer.imageListeners.push((detail) => this.load(detail));
    viewer.indications = this; // for tests and the console
    if (viewer.detail) this.load(viewer.detail);
  }

  build() {
    const writable = may("annotations:write");
    this.kindSelect = h("select", { "aria-label": "Shape of the new indication" }, KINDS.map(([k, label]) => h("option", { value: k }, label)));
    this.drawButton = h("button", { type: "button", class: "ind-draw", onclick: () => this.startDrawing(this.kindSelect.value) }, "Draw indication");
    this.hint = h("p", { class: "ind-hint", "aria-live": "polite" });
    this.hint.hidden = true;
    this.form = h("form", { class: "ind-form", "aria-label": "Indication" });
    this.form.hidden = true;
    this.notice = h("p", { class: "error ind-notice", role: "alert" });
    this.notice.hidden = true;
    this.list = h("ol", { class: "ind-list", "aria-label": "Indications of this image" });
    this.count = h("span", { class: "ind-count" });
    this.state = h("p", { class: "ind-state" });
    this.section = h("section", { class: "indications", "aria-label": "Indications" },
      h("h2", {}, "Indications ", this.count),
      this.state,
      writable ? h("div", { class: "ind-tools" }, this.kindSelect, this.drawButton) : null,
      this.hint, this.form, this.notice, this.list);
    const side = this.viewer.root.querySelector("aside.side");
    side.prepend(this.section);
    // Drawing takes the pointer before the viewer's tools (capture on the stage, the canvas's parent).
    const stage = this.viewer.stage;
    stage.addEventListener("pointerdown", (e) => this.pointerDown(e), true);
    stage.addEventListener("pointermove", (e) => this.pointerMove(e), true);
    stage.addEventListener("pointerup", (e) => this.pointerUp(e), true);
    stage.addEventListener("dblclick", (e) => { if (this.drawing) { e.stopPropagation(); this.finishDrawing(); } }, true);
    stage.addEventListener("keydown", (e) => this.keyDown(e), true);
    // A click (not the end of a window/level or pan drag) on a drawing selects its row.
    stage.addEventListener("pointerdown", (e) => { this.pressedAt = { x: e.clientX, y: e.clientY }; }, true);
    stage.addEventListener("click", (e) => {
      const still = this.pressedAt && Math.hypot(e.clientX - this.pressedAt.x, e.clientY - this.pressedAt.y) < 4;
      if (still && !this.drawing && !this.justDrew) this.pick(e);
      this.justDrew = false;
    });
  }

  tell(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    if (text) status(text);
  }

  // -- loading --------------------------------------------------------------------
  async load(detail) {
    const uid = detail.uid;
    if (this.loadedFor !== uid) this.selected = null; // another image: nothing of it is selected yet
    this.loadedFor = uid;
    this.items = [];
    this.device = [];
    this.viewer.root.dataset.indications = "loading";
    this.render();
    try {
      const [page, state] = await Promise.all([
        getJSON(`/api/images/${uid}/indications`),
        getJSON(`/api/inspections/${this.viewer.context.inspection.uid}/evaluation`).catch(() => null),
      ]);
      if (this.viewer.detail?.uid !== uid) return;
      this.items = page.items;
      this.device = page.device;
      this.signed = !!state && state.signatures.length > 0;
      this.dispositions = state?.evaluation?.indications || {};
      const inspection = this.viewer.context.inspection;
      mount(this.state, state ? [h("a", { href: `#/inspection/${encodeURIComponent(inspection.uid)}`, title: "The inspection's evaluation" }, "Inspection"), " ",
        statusBadge(state.status, state.device_approval_status), this.signed ? h("span", { class: "ind-meta" }, "Signed: a change needs a reason and invalidates the signatures.") : null] : []);
      this.viewer.root.dataset.indications = "loaded";
      this.tell("");
    } catch (err) {
      if (this.viewer.detail?.uid !== uid) return;
      this.viewer.root.dataset.indications = "failed";
      this.tell(`Cannot load the indications of this image: ${err.message}`);
    }
    this.render();
    this.viewer.draw();
  }

  // -- the list -------------------------------------------------------------------
  async render() {
    let meanings = new Map();
    try { meanings = new Map((await indicationTypes()).map((t) => [t.code, t.meaning])); } catch (_) { /* codes shown */ }
    const isSel = (source, key) => !!this.selected && this.selected.source === source && this.selected.key === key;
    // Active ones first; withdrawn ones stay listed (dimmed, not drawn) so that their history is one click away.
    const ordered = [...this.items.filter((it) => !it.withdrawn), ...this.items.filter((it) => it.withdrawn)];
    const rows = ordered.map((it) => h("li", {
      class: it.withdrawn ? "ind-row withdrawn" : "ind-row", "data-source": "inspector", "data-id": it.id, "aria-selected": String(isSel("inspector", it.id)), tabindex: "0",
      onclick: () => this.select("inspector", it.id), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.select("inspector", it.id); } },
    },
    h("span", { class: "ind-number" }, `#${it.number}`), " ",
    h("span", { class: "ind-type" }, meanings.get(it.type) || it.type), " ",
    it.label ? h("span", { class: "ind-label" }, it.label) : null,
    h("span", { class: "ind-meta" },
      [it.withdrawn ? "withdrawn" : "", sizeText(it.sizes), `version ${it.version}`, this.dispositions?.[String(it.id)] ? `evaluated ${this.dispositions[String(it.id)]}` : "", it.frame > 1 || this.viewer.stack.some((x) => x.frame > 1) ? `frame ${it.frame}` : ""].filter(Boolean).join(" · ")),
    isSel("inspector", it.id) ? this.rowActions(it) : null));
    const deviceRows = this.device.map((d, i) => h("li", {
      class: "ind-row device", "data-source": "device", "data-number": d.number ?? "", "aria-selected": String(isSel("device", i)), tabindex: "0",
      onclick: () => this.select("device", i), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.select("device", i); } },
    },
    h("span", { class: "ind-source" }, "device"), " ",
    h("span", { class: "ind-number" }, d.number != null ? `#${d.number}` : ""), " ",
    h("span", { class: "ind-type" }, d.types.map((t) => meanings.get(t) || t).join(", ") || "(no type)"), " ",
    d.label ? h("span", { class: "ind-label" }, d.label) : null,
    h("span", { class: "ind-meta" }, [d.disposition ? `device disposition ${d.disposition}` : "", d.points.length ? "" : "no region", d.description || ""].filter(Boolean).join(" · "))));
    const total = this.items.filter((it) => !it.withdrawn).length + this.device.length;
    this.count.textContent = total ? `(${total})` : "";
    mount(this.list, rows, deviceRows, total ? null : h("li", { class: "ind-empty" }, "No indications on this image."));
  }

  rowActions(it) {
    const box = h("div", { class: "ind-actions" });
    if (may("annotations:write") && !it.withdrawn) box.append(h("button", { type: "button", onclick: (e) => { e.stopPropagation(); this.editForm(it); } }, "Edit"));
    box.append(h("button", { type: "button", onclick: (e) => { e.stopPropagation(); this.showHistory(it, box); } }, "History"));
    return box;
  }

  select(source, key) {
    this.selected = { source, key };
    const it = source === "inspector" ? this.items.find((x) => x.id === key) : null;
    if (it && this.viewer.item && it.frame !== this.viewer.item.frame) {
      const index = this.viewer.stack.findIndex((x) => x.sop === it.image_uid && x.frame === it.frame);
      if (index >= 0) this.viewer.go(index);
    }
    this.render().then(() => {
      const row = this.list.querySelector("li[aria-selected='true']");
      if (row) row.scrollIntoView({ block: "nearest" });
    });
    this.viewer.draw();
  }

  async showHistory(it, box) {
    const old = box.querySelector(".ind-history");
    if (old) { old.remove(); return; }
    try {
      const versions = await getJSON(`/api/indications/${it.id}/history`);
      const meanings = new Map((await indicationTypes()).map((t) => [t.code, t.meaning]));
      box.append(h("ol", { class: "ind-history", "aria-label": `Versions of indication ${it.number}` },
        versions.map((v) => h("li", { "data-version": v.version },
          h("strong", {}, `version ${v.version}`), " ", utc(v.created_at), " · ", v.author,
          h("span", { class: "ind-meta" }, [meanings.get(v.type) || v.type, v.label || "", sizeText(v.sizes), v.withdrawn ? "withdrawn" : ""].filter(Boolean).join(" · ")),
          v.reason ? h("span", { class: "ind-meta" }, `reason: ${v.reason}`) : null))));
    } catch (err) {
      this.tell(`Cannot load the history: ${err.message}`);
    }
  }

  // -- the form (new indication, or a new version) --------------------------------------
  async showForm({ title, values, submit, redraw, withdraw }) {
    let types = [];
    try { types = await indicationTypes(); } catch (err) { this.tell(`Cannot load the indication types: ${err.message}`); return; }
    const typeSelect = h("select", { name: "type", required: true },
      h("option", { value: "" }, "— choose —"), types.map((t) => h("option", { value: t.code, selected: values.type === t.code }, t.meaning)));
    const label = h("input", { name: "label", maxlength: "64", value: values.label || "" });
    const description = h("textarea", { name: "description", maxlength: "1024", rows: "2" });
    description.value = values.description || "";
    const reason = redraw ? h("input", { name: "reason", maxlength: "500", required: this.signed }) : null;
    const error = h("p", { class: "error", role: "alert" });
    error.hidden = true;
    mount(this.form,
      h("h3", {}, title),
      h("label", {}, h("span", {}, "Type"), typeSelect),
      h("label", {}, h("span", {}, "Label"), label),
      h("label", {}, h("span", {}, "Description"), description),
      reason ? h("label", {}, h("span", {}, this.signed ? "Reason for the change (required: the inspection is signed)" : "Reason for the change"), reason) : null,
      error,
      h("div", { class: "ind-form-actions" },
        h("button", { type: "submit" }, "Save"),
        redraw ? h("button", { type: "button", onclick: () => redraw() }, "Redraw region") : null,
        withdraw ? h("button", { type: "button", class: "ind-withdraw", onclick: async () => {
          error.hidden = true;
          try { await withdraw(reason && reason.value.trim() ? reason.value.trim() : null); } catch (err) { error.textContent = `Not withdrawn: ${err.message}`; error.hidden = false; }
        } }, "Withdraw") : null,
        h("button", { type: "button", onclick: () => this.closeForm() }, "Cancel")));
    this.form.onsubmit = async (e) => {
      e.preventDefault();
      const body = { type: typeSelect.value, label: label.value.trim() || null, description: description.value.trim() || null };
      if (reason && reason.value.trim()) body.reason = reason.value.trim();
      error.hidden = true;
      try {
        await submit(body);
      } catch (err) {
        error.textContent = `Not saved: ${err.message}`;
        error.hidden = false;
      }
    };
    this.form.hidden = false;
    typeSelect.focus();
  }

  closeForm() {
    this.form.hidden = true;
    mount(this.form);
    this.draft = null;
    this.editing = null;
    this.viewer.draw();
  }

  newForm(region) {
    const detail = this.viewer.detail, item = this.viewer.item;
    this.draft = { ...region, sop: detail.uid, frame: item.frame };
    this.viewer.draw();
    this.showForm({
      title: `New ${KINDS.find(([k]) => k === region.kind)[1].toLowerCase()} indication`,
      values: {},
      submit: async (body) => {
        const saved = await postJSON(`/api/images/${detail.uid}/indications`, {
          kind: this.draft.kind, points: this.draft.points, frame: this.draft.frame, ...body,
        });
        this.closeForm();
        this.selected = { source: "inspector", key: saved.id };
        await this.load(detail);
        status(`Indication #${saved.number} saved (version ${saved.version}).`);
      },
    });
  }

  editForm(it) {
    const detail = this.viewer.detail;
    this.editing = { id: it.id, region: null };
    this.showForm({
      title: `Indication #${it.number}: version ${it.version + 1}`,
      values: it,
      withdraw: async (reason) => {
        // Withdrawn, never deleted: the archive keeps every version; the list shows active ones.
        const saved = await putJSON(`/api/indications/${it.id}`, { withdrawn: true, version: it.version, ...(reason ? { reason } : {}) });
        this.closeForm();
        this.selected = null;
        await this.load(detail);
        status(`Indication #${saved.number} withdrawn (version ${saved.version}).`);
      },
      redraw: () => this.startDrawing(it.kind, (region) => { this.editing.region = region; this.draft = { ...region, sop: it.image_uid, frame: it.frame }; this.viewer.draw(); }),
      submit: async (body) => {
        const change = { ...body, version: it.version };
        if (this.editing?.region) { change.kind = this.editing.region.kind; change.points = this.editing.region.points; }
        const saved = await putJSON(`/api/indications/${it.id}`, change);
        this.closeForm();
        this.selected = { source: "inspector", key: saved.id };
        await this.load(detail);
        status(`Indication #${saved.number} is now version ${saved.version}.`);
      },
    });
  }

  // -- drawing a region ---------------------------------------------------------------
  /** Draw a region of *kind*; then(region) receives it (default: the form for a new indication). */
  startDrawing(kind, then = null) {
    if (!this.viewer.detail) return;
    if (!then) this.closeForm();
    this.drawing = { kind, points: [], cursor: null, then: then || ((region) => this.newForm(region)) };
    this.viewer.root.dataset.drawing = kind;
    const how = kind === "point" ? "Click the indication on the image."
      : MULTI.has(kind) ? "Click each point; double-click or press Enter to finish, Escape to cancel."
        : "Drag across the indication on the image; Escape cancels.";
    this.hint.textContent = how;
    this.hint.hidden = false;
    this.viewer.canvas.focus();
  }

  stopDrawing() {
    this.drawing = null;
    delete this.viewer.root.dataset.drawing;
    this.hint.hidden = true;
    this.viewer.draw();
  }

  imagePoint(e) {
    const r = this.viewer.canvas.getBoundingClientRect();
    const p = this.viewer.toImage(e.clientX - r.left, e.clientY - r.top);
    const d = this.viewer.detail;
    return { x: Math.min(d.columns, Math.max(0, p.x)), y: Math.min(d.rows, Math.max(0, p.y)) };
  }

  pointerDown(e) {
    const dr = this.drawing;
    if (!dr || e.button !== 0 || e.shiftKey) return; // other buttons and Shift still pan
    e.stopPropagation();
    e.preventDefault();
    this.viewer.canvas.focus();
    const p = this.imagePoint(e);
    if (MULTI.has(dr.kind)) {
      const last = dr.points[dr.points.length - 1];
      if (!last || this.viewer.screenDistance(last, p) > 3) dr.points.push(p);
    } else {
      dr.points = dr.kind === "point" ? [p] : [p, p];
      dr.down = true;
    }
    this.viewer.draw();
  }

  pointerMove(e) {
    const dr = this.drawing;
    if (!dr) return;
    const p = this.imagePoint(e);
    if (MULTI.has(dr.kind)) dr.cursor = p;
    else if (dr.down && dr.points.length === 2) dr.points[1] = p;
    else return;
    this.viewer.draw();
  }

  pointerUp(e) {
    const dr = this.drawing;
    if (!dr || !dr.down) { if (dr) e.stopPropagation(); return; }
    e.stopPropagation();
    dr.down = false;
    if (dr.kind === "point") { this.finishDrawing(); return; }
    dr.points[1] = this.imagePoint(e);
    if (this.viewer.screenDistance(dr.points[0], dr.points[1]) > 3) this.finishDrawing();
    else dr.points = [];
  }

  keyDown(e) {
    if (!this.drawing) return;
    if (e.key === "Escape") { e.stopPropagation(); e.preventDefault(); this.stopDrawing(); }
    else if (e.key === "Enter") { e.stopPropagation(); e.preventDefault(); this.finishDrawing(); }
  }

  finishDrawing() {
    const dr = this.drawing;
    if (!dr) return;
    if (dr.points.length < MIN_POINTS[dr.kind]) {
      this.hint.textContent = `A ${dr.kind} needs at least ${MIN_POINTS[dr.kind]} points. ${this.hint.textContent.split(". ").pop()}`;
      return;
    }
    const region = { kind: dr.kind, points: dr.points.map((p) => ({ x: Math.round(p.x * 10) / 10, y: Math.round(p.y * 10) / 10 })) };
    this.justDrew = true;
    this.stopDrawing();
    dr.then(region);
  }

  // -- painting and picking -----------------------------------------------------------
  shapes() {
    const v = this.viewer;
    if (!v.item || !v.detail) return [];
    const out = [];
    for (const it of this.items) {
      if (!it.withdrawn && it.image_uid === v.item.sop && it.frame === v.item.frame && !(this.editing?.region && this.editing.id === it.id)) {
        out.push({ source: "inspector", key: it.id, kind: it.kind, points: it.points, text: `#${it.number}${it.label ? ` ${it.label}` : ""}` });
      }
    }
    this.device.forEach((d, i) => {
      if (d.points.length && d.kind) out.push({ source: "device", key: i, kind: d.kind, points: d.points, text: `device #${d.number ?? i + 1}` });
    });
    return out;
  }

  paint(ctx) {
    const sel = this.selected;
    const shapes = this.shapes();
    // The selected one last, on top.
    shapes.sort((a, b) => (sel && a.source === sel.source && a.key === sel.key ? 1 : 0) - (sel && b.source === sel.source && b.key === sel.key ? 1 : 0));
    for (const s of shapes) {
      const chosen = sel && s.source === sel.source && s.key === sel.key;
      this.stroke(ctx, s, chosen ? COLOUR.selected : COLOUR[s.source], chosen ? 3 : 1.5, s.source === "device" ? [6, 4] : []);
    }
    const draft = this.drawing ? { kind: this.drawing.kind, points: this.drawing.cursor ? [...this.drawing.points, this.drawing.cursor] : this.drawing.points }
      : this.draft && this.viewer.item && this.draft.sop === this.viewer.item.sop ? this.draft : null;
    if (draft && draft.points.length) {
      const kind = this.drawing && MULTI.has(draft.kind) && draft.points.length < 3 ? "polyline" : draft.kind;
      this.stroke(ctx, { kind, points: draft.points, text: "" }, COLOUR.draft, 2, [4, 3]);
    }
  }

  stroke(ctx, s, colour, width, dash) {
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = width;
    ctx.setLineDash(dash);
    ctx.stroke(shapePath(this.viewer, s.kind, s.points));
    if (s.text) {
      const at = this.viewer.toScreen(s.points[0].x, s.points[0].y);
      ctx.setLineDash([]);
      ctx.font = "bold 13px sans-serif";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#000";
      ctx.strokeText(s.text, at.x + 6, at.y - 8);
      ctx.fillText(s.text, at.x + 6, at.y - 8);
    }
    ctx.restore();
  }

  /** Select the indication drawn under the pointer (its outline, or inside a closed region). */
  pick(e) {
    const c = this.viewer.canvas;
    const r = c.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    const ctx = c.getContext("2d");
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.lineWidth = 12;
    let hit = null;
    for (const s of this.shapes().reverse()) {
      const path = shapePath(this.viewer, s.kind, s.points);
      const closed = ["rect", "ellipse", "polygon", "point"].includes(s.kind);
      if (ctx.isPointInStroke(path, x, y) || (closed && ctx.isPointInPath(path, x, y))) { hit = s; break; }
    }
    ctx.restore();
    if (hit) this.select(hit.source, hit.key);
  }
}
