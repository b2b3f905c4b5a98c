// The web viewer's pages, routed by the URL fragment:
//   #/search?...            components or inspections, filters, paging
//   #/component/<serial>    the component and its inspection history (timeline)
//   #/inspection/<uid>      its series, each a strip of thumbnails
//   #/image/<study>/<series>/<sop>   the image viewer
//   #/audit?...  #/history/<serial>  the auditor's pages (audit.js)
//   #/quality?...           the quality dashboard; #/quality/inspections?... the inspections behind a figure
import { enc, getJSON, getPixels, logout, setMe } from "./api.js";
import { auditPage, historyPage } from "./audit.js";
import { fmtDate, fmtName, h, mount, parseIsoDate, plural, status } from "./dom.js";
import { evaluationSection, statusBadge, statusFilter } from "./evaluation.js";
import { IndicationsPanel } from "./indications.js";
import { thumbnailCanvas } from "./render.js";
import { qualityListPage, qualityPage } from "./quality.js";
import { installShortcuts } from "./shortcuts.js";
import { Viewer } from "./viewer.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
let viewer = null;

function crumb(...items) {
  mount(crumbs, items.map((it, i) => [i ? h("span", { class: "crumb-sep", "aria-hidden": "true" }, "›") : null,
    it.href ? h("a", { href: it.href }, it.label) : h("span", { "aria-current": "page" }, it.label)]));
}

function pageTitle(text) { document.title = `${text} · ndt-pacs`; }

// -- search ---------------------------------------------------------------------
const FILTERS = [
  ["serial", "Serial / component ID"], ["name", "Component name"], ["material", "Material"], ["welder", "Welder"],
  ["company", "Inspecting company"],
];
const MODALITIES = ["", "DX", "CR", "CT", "US", "EC", "XC", "OT"];

async function searchPage(params) {
  const level = params.get("level") === "inspection" ? "inspection" : "component";
  const heading = level === "component" ? "Find a component" : "Find an inspection";
  crumb({ label: "Search" });
  pageTitle(heading);
  const field = (name, label, attrs = {}) => h("label", {}, h("span", {}, label), h("input", { name, value: params.get(name) || "", ...attrs }));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search filters" },
    h("fieldset", { class: "level" }, h("legend", {}, "Show"),
      ["component", "inspection"].map((l) => h("label", {}, h("input", { type: "radio", name: "level", value: l, checked: l === level }), l === "component" ? "Components" : "Inspections"))),
    field("q", "Any field", { type: "search", placeholder: "free text" }),
    FILTERS.map(([n, l]) => field(n, l)),
    h("label", {}, h("span", {}, "Modality"), h("select", { name: "modality" }, MODALITIES.map((m) => h("option", { value: m, selected: (params.get("modality") || "") === m }, m || "any")))),
    statusFilter(params.get("status")),
    field("from", "Inspected from", { ...DATE_INPUT, value: isoDate(params.get("from")) }),
    field("to", "Inspected to", { ...DATE_INPUT, value: isoDate(params.get("to")) }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search"), h("a", { href: "#/search" }, "Reset")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (!v) continue;
      if (k !== "from" && k !== "to") { next.set(k, v); continue; }
      const input = form.elements[k], day = parseIsoDate(v);
      input.setCustomValidity(day ? "" : "Enter the date as YYYY-MM-DD, e.g. 2026-01-15");
      if (!day) { input.reportValidity(); return; }
      next.set(k, day);
    }
    location.hash = `#/search?${next}`;
  });
  // Switching between components and inspections searches again (and the heading follows).
  form.addEventListener("change", (e) => { if (e.target.name === "level") form.requestSubmit(); });
  for (const name of ["from", "to"]) form.elements[name].addEventListener("input", (e) => e.target.setCustomValidity(""));
  const results = h("section", { class: "results", "aria-label": "Results" }, "Searching…");
  mount(main, h("h1", {}, heading), form, results);

  const query = new URLSearchParams(params);
  query.delete("level");
  query.set("limit", params.get("limit") || "25");
  try {
    const page = await getJSON(`/api/${level === "component" ? "components" : "inspections"}?${query}`);
    mount(results, resultTable(level, page, params));
  } catch (err) {
    mount(results, h("p", { class: "error", role: "alert" }, `Search failed: ${err.message}`));
  }
}

// Dates are typed and shown as ISO 8601 (YYYY-MM-DD) whatever the browser's locale: a text field, not type=date.
const DATE_INPUT = { type: "text", inputmode: "numeric", placeholder: "YYYY-MM-DD", pattern: "\\d{4}-?\\d{2}-?\\d{2}", maxlength: "10", title: "A date as YYYY-MM-DD", autocomplete: "off" };

function isoDate(v) { return v && /^\d{8}$/.test(v) ? `${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6)}` : ""; }

function resultTable(level, page, params) {
  const cols = level === "component"
    ? [["serial", "Serial / ID"], ["name", "Name"], ["material", "Material"], [null, "Welders"], ["inspections", "Inspections"], [null, "Latest inspection"]]
    : [["date", "Date"], ["serial", "Serial / ID"], ["name", "Component"], ["modality", "Modalities"], ["company", "Inspecting company"], ["order", "Order"], [null, "Description"], [null, "Images"], [null, "Status"]];
  const sort = params.get("sort") || (level === "component" ? "serial" : "date");
  const order = params.get("order") || (level === "component" ? "asc" : "desc");
  const link = (changes) => { const p = new URLSearchParams(params); for (const [k, v] of Object.entries(changes)) p.set(k, v); return `#/search?${p}`; };
  const head = h("tr", {}, cols.map(([key, label]) => h("th", { scope: "col", "aria-sort": key === sort ? (order === "asc" ? "ascending" : "descending") : null },
    key ? h("a", { href: link({ sort: key, order: key === sort && order === "asc" ? "desc" : "asc", offset: "0" }) }, label, key === sort ? (order === "asc" ? " ▲" : " ▼") : "") : label)));
  const rows = page.items.map((it) => level === "component"
    ? h("tr", {}, h("td", {}, h("a", { href: `#/component/${enc(it.serial)}` }, it.serial)), h("td", {}, fmtName(it.name)), h("td", {}, it.material || it.material_grade || ""),
      h("td", {}, it.welder_ids.join(", ")), h("td", { class: "num" }, it.inspection_count), h("td", {}, fmtDate(it.latest_inspection_date)))
    : h("tr", {}, h("td", {}, h("a", { href: `#/inspection/${enc(it.uid)}` }, fmtDate(it.date) || "(no date)")),
      h("td", {}, h("a", { href: `#/component/${enc(it.component.serial)}` }, it.component.serial)), h("td", {}, fmtName(it.component.name)),
      h("td", {}, it.modalities.join(", ")), h("td", {}, fmtName(it.company)), h("td", {}, it.order || ""), h("td", {}, it.description || ""), h("td", { class: "num" }, it.image_count),
      h("td", { class: "status-cell" }, statusBadge(it.status, it.device_approval_status))));
  const limit = page.limit, offset = page.offset;
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    h("span", {}, page.total ? `${offset + 1}–${Math.min(offset + limit, page.total)} of ${page.total}` : "No matches"),
    offset > 0 ? h("a", { href: link({ offset: String(Math.max(0, offset - limit)) }) }, "‹ Previous") : null,
    offset + limit < page.total ? h("a", { href: link({ offset: String(offset + limit) }), rel: "next" }, "Next ›") : null);
  return [h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, rows)), pager];
}

// -- component --------------------------------------------------------------------
function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, Array.isArray(v) ? v.join(", ") : String(v))]));
}

async function componentPage(serial) {
  const c = await getJSON(`/api/components/${enc(serial)}`);
  crumb({ label: "Search", href: "#/search" }, { label: `Component ${c.serial}` });
  pageTitle(c.serial);
  const latest = c.inspections.length ? c.inspections[c.inspections.length - 1] : null;
  const items = [...c.inspections].reverse().map((i) => h("li", { class: i === latest ? "latest" : "" },
    h("time", { datetime: isoDate(i.date) }, fmtDate(i.date) || "(no date)"),
    h("div", { class: "event" },
      h("a", { href: `#/inspection/${enc(i.uid)}` }, i.description || `Inspection ${i.inspection_id || ""}`.trim()),
      i === latest ? h("span", { class: "badge" }, "latest") : null, " ", statusBadge(i.status, i.device_approval_status),
      h("div", { class: "meta" }, [i.modalities.join(", "), fmtName(i.company), i.order ? `order ${i.order}` : "", `${plural(i.series_count, "series", "series")} · ${plural(i.image_count, "image")}`].filter(Boolean).join(" · ")),
      deviceFindings(i))));
  mount(main,
    h("h1", {}, `Component ${c.serial}`, c.name ? h("span", { class: "sub" }, ` — ${fmtName(c.name)}`) : null),
    dl([["Serial / ID", c.serial], ["Name", fmtName(c.name)], ["Material", c.material], ["Grade", c.material_grade], ["Manufacturer", c.manufacturer],
      ["Manufactured", fmtDate(c.manufacturing_date)], ["Thickness (mm)", c.material_thickness], ["Welders", c.welder_ids]]),
    h("h2", {}, `Inspection history (${c.inspections.length})`),
    h("ol", { class: "timeline", "aria-label": "Inspections, newest first" }, items));
}

/** How many indications the inspecting device sent (Indication Sequence), if any; its ApprovalStatus is in the status badge. */
function deviceFindings(i) {
  return i.device_indication_count
    ? h("div", { class: "meta device" }, `${plural(i.device_indication_count, "indication")} from the device`) : null;
}

// -- inspection ------------------------------------------------------------------
async function inspectionPage(uid) {
  const i = await getJSON(`/api/inspections/${enc(uid)}`);
  crumb({ label: "Search", href: "#/search" }, { label: `Component ${i.component.serial}`, href: `#/component/${enc(i.component.serial)}` }, { label: `Inspection ${fmtDate(i.date)}` });
  pageTitle(`Inspection ${fmtDate(i.date)}`);
  const strips = i.series.map((s) => h("section", { class: "series" },
    h("h2", {}, `${s.modality || "?"} · Series ${s.number ?? ""} ${s.description ? "— " + s.description : ""}`),
    h("p", { class: "meta" }, [s.inspector ? `inspector ${fmtName(s.inspector)}` : "", s.station || "", s.device_manufacturer || "", `${s.images.length} image${s.images.length === 1 ? "" : "s"}`].filter(Boolean).join(" · ")),
    h("ul", { class: "strip" }, s.images.slice(0, 60).map((img) => {
      const box = h("span", { class: "thumb" }, img.rows && img.columns ? "…" : "no image");
      if (img.rows && img.columns) queueThumb(box, img); // not the report (DOC) nor the export (PR)
      return h("li", {}, h("a", { href: `#/image/${enc(i.uid)}/${enc(s.uid)}/${enc(img.uid)}`, title: `Image ${img.number ?? ""}` },
        box, h("span", { class: "caption" }, `#${img.number ?? "?"} · ${img.columns}×${img.rows}${img.frames > 1 ? ` · ${img.frames} frames` : ""}`)));
    })),
    s.images.length > 60 ? h("p", {}, `… and ${s.images.length - 60} more (open the viewer to scroll through all)`) : null));
  mount(main,
    h("h1", {}, `Inspection ${fmtDate(i.date)}`, h("span", { class: "sub" }, ` — ${i.component.serial} ${fmtName(i.component.name)}`)),
    dl([["Description", i.description], ["Order", i.order], ["Inspecting company", fmtName(i.company)], ["Owner", fmtName(i.owner)], ["Modalities", i.modalities], ["Expiry", fmtDate(i.expiry_date)],
      ["Device indications", i.device_indication_count ? plural(i.device_indication_count, "indication") : null]]),
    evaluationSection(i),
    strips);
}

const thumbQueue = [];
let thumbsRunning = 0;
function queueThumb(box, img) { thumbQueue.push([box, img]); pumpThumbs(); }
function pumpThumbs() {
  while (thumbsRunning < 3 && thumbQueue.length) {
    const [box, img] = thumbQueue.shift();
    thumbsRunning++;
    const scale = Math.max(1, Math.ceil(Math.max(img.rows || 1, img.columns || 1) / 128));
    getPixels(`${img.pixels_url}?scale=${scale}`)
      .then((frame) => { const c = thumbnailCanvas(frame); c.setAttribute("role", "img"); c.setAttribute("aria-label", `Image ${img.number ?? ""}`); mount(box, c); })
      .catch(() => mount(box, "no preview"))
      .finally(() => { thumbsRunning--; pumpThumbs(); });
  }
}

// -- image -------------------------------------------------------------------------
async function imagePage(study, series, sop) {
  const i = await getJSON(`/api/inspections/${enc(study)}`);
  const s = i.series.find((x) => x.uid === series) || i.series.find((x) => x.images.some((im) => im.uid === sop));
  if (!s) throw new Error("image not in this inspection");
  const img = s.images.find((im) => im.uid === sop) || s.images[0];
  crumb({ label: "Search", href: "#/search" }, { label: `Component ${i.component.serial}`, href: `#/component/${enc(i.component.serial)}` },
    { label: `Inspection ${fmtDate(i.date)}`, href: `#/inspection/${enc(i.uid)}` }, { label: `${s.modality || ""} image ${img.number ?? ""}` });
  pageTitle(`${i.component.serial} image`);
  // Multi-frame: scroll the frames. Single-frame series (CT slices): scroll the series.
  const stack = img.frames > 1
    ? Array.from({ length: img.frames }, (_, k) => ({ sop: img.uid, frame: k + 1 }))
    : s.images.map((im) => ({ sop: im.uid, frame: 1 }));
  const index = img.frames > 1 ? 0 : Math.max(0, stack.findIndex((x) => x.sop === img.uid));
  const root = h("div", { class: "viewer-root" });
  mount(main, root);
  viewer = new Viewer(root, stack, index, { inspection: i, series: s });
  new IndicationsPanel(viewer);
  await viewer.go(index);
  viewer.canvas.focus();
}

// -- quality -----------------------------------------------------------------------
async function quality(sub, params) {
  if (sub === "inspections") {
    crumb({ label: "Quality", href: "#/quality" }, { label: "Inspections" });
    pageTitle("Quality: inspections");
    await qualityListPage(main, params);
  } else {
    crumb({ label: "Quality" });
    pageTitle("Quality");
    await qualityPage(main, params);
  }
}

// -- router ------------------------------------------------------------------------
async function route() {
  if (viewer) { viewer.destroy(); viewer = null; window.viewer = undefined; }
  const hash = location.hash || "#/search";
  const [path, qs] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  document.body.dataset.page = parts[0] || "search";
  status("");
  try {
    if (parts[0] === "component" && parts[1]) await componentPage(parts.slice(1).join("/"));
    else if (parts[0] === "inspection" && parts[1]) await inspectionPage(parts[1]);
    else if (parts[0] === "image" && parts.length === 4) await imagePage(parts[1], parts[2], parts[3]);
    else if (parts[0] === "audit") await auditPage(main, new URLSearchParams(qs || ""), crumb);
    else if (parts[0] === "history" && parts[1]) await historyPage(main, parts.slice(1).join("/"), crumb);
    else if (parts[0] === "quality") await quality(parts[1], new URLSearchParams(qs || ""));
    else await searchPage(new URLSearchParams(qs || ""));
  } catch (err) {
    mount(main, h("h1", {}, "Not available"), h("p", { class: "error", role: "alert" }, err.message), h("a", { href: "#/search" }, "Back to search"));
  }
  if (parts[0] !== "image") main.focus({ preventScroll: true });
}

document.getElementById("quick").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = document.getElementById("quick-q").value.trim();
  location.hash = `#/search?${new URLSearchParams(q ? { q } : {})}`;
});
/** Who is signed in: the badge in the header, and body classes that hide what they may not do. */
async function signedIn() {
  const me = await getJSON("/api/me"); // 401: api.js sends the browser to the login page
  setMe(me);
  window.pacsMe = me; // for tests and the console
  for (const p of me.permissions) document.body.classList.add(`may-${p.replace(":", "-")}`);
  const who = h("span", { class: "who", title: me.denied["evaluations:write"] ? `May not evaluate: ${me.denied["evaluations:write"]}` : "" },
    h("span", { class: "who-name" }, me.full_name || me.username), " ", h("span", { class: "who-role" }, `(${me.role})`));
  const dashboard = me.permissions.includes("quality:read") ? h("a", { href: "#/quality", id: "quality-link" }, "Quality") : null;
  document.getElementById("user").replaceChildren(...[dashboard, who].filter(Boolean), h("button", { type: "button", id: "logout", onclick: () => logout() }, "Log out"));
}

window.addEventListener("hashchange", route);
installShortcuts();
signedIn().then(route, (err) => status(`Not signed in: ${err.message}`));
