// The quality dashboard (#/quality) and its drill-down lists (#/quality/inspections?...).
// Figures come from /api/quality/...; charts are SVG drawn here; every text goes in with
// textContent (h() and svg() below never parse HTML). Each bar and point links to the
// inspections behind it; each table has its CSV (same rows, ?format=csv).
import { enc, getJSON } from "./api.js";
import { fmtDate, h, mount } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const FILTERS = [
  ["from", "From", "date"], ["to", "To", "date"], ["welder", "Welder"], ["material", "Material"],
  ["component", "Component"], ["company", "Inspecting company"], ["inspector", "Inspector"],
  ["method", "Method"], ["standard", "Standard"],
];
const GROUPS = ["welder", "company", "material", "component", "inspector", "method", "standard"];
const OUTCOMES = { inspections: "all inspections", evaluated: "evaluated", rejected: "rejected", accepted: "accepted",
  repaired: "repaired", "first-pass-failed": "not accepted at the first attempt" };

/** An SVG element; attributes set one by one, text as text nodes. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`);
const num = (v) => (v === null || v === undefined ? "–" : String(v));

/** The filter parameters of *params* (the ones the API knows), without empty values. */
function filtersOf(params) {
  const out = new URLSearchParams();
  for (const [name] of FILTERS) if (params.get(name)) out.set(name, params.get(name));
  return out;
}

function withParams(base, extra) {
  const p = new URLSearchParams(base);
  for (const [k, v] of Object.entries(extra)) if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
  return p;
}

/** First and last day (YYYY-MM-DD) of a subgroup label "2025-03" or "2025-W10". */
export function periodRange(label) {
  const iso = (d) => d.toISOString().slice(0, 10);
  const week = /^(\d{4})-W(\d{2})$/.exec(label);
  if (week) {
    const jan4 = new Date(Date.UTC(+week[1], 0, 4));
    const monday = new Date(jan4.getTime() - ((jan4.getUTCDay() + 6) % 7) * 86400000 + (+week[2] - 1) * 7 * 86400000);
    return [iso(monday), iso(new Date(monday.getTime() + 6 * 86400000))];
  }
  const [y, m] = label.split("-").map(Number);
  return [iso(new Date(Date.UTC(y, m - 1, 1))), iso(new Date(Date.UTC(y, m, 0)))];
}

function drill(filters, extra) { return `#/quality/inspections?${withParams(filters, extra)}`; }

function csvLink(table, params) {
  const p = withParams(params, { format: "csv" });
  return h("a", { class: "csv", href: `/api/quality/${table}?${p}`, download: `quality-${table}.csv`, "data-table": table }, "CSV");
}

function panel(id, title, params, table, ...body) {
  return h("section", { class: "q-panel", id: `q-${id}`, "aria-labelledby": `q-${id}-h` },
    h("header", {}, h("h2", { id: `q-${id}-h` }, title), table ? csvLink(table, params) : null), body);
}

function tableOf(columns, rows, cells) {
  return h("table", { class: "q-table" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, cells(r).map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", { colspan: columns.length }, "No data for these filters"))));
}

// -- charts --------------------------------------------------------------------------

/** Horizontal bars, largest first: [{label, value, text, href, title}], value in 0..max. */
function barChart(items, { max, label, cls = "" }) {
  const rowH = 24, left = 130, width = 560, right = 120;
  const height = Math.max(1, items.length) * rowH + 8;
  const scale = (v) => (max > 0 ? (v / max) * (width - left - right) : 0);
  return svg("svg", { class: `q-chart q-bars ${cls}`, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    items.map((it, i) => {
      const y = 4 + i * rowH;
      return svg("a", { href: it.href, class: "q-bar", "data-group": it.label },
        svg("title", {}, it.title),
        svg("text", { x: left - 6, y: y + 16, "text-anchor": "end", class: "q-label" }, it.label),
        svg("rect", { x: left, y: y + 3, width: Math.max(1, scale(it.value)), height: rowH - 8, class: it.worst ? "worst" : "" }),
        svg("text", { x: left + scale(it.value) + 6, y: y + 16, class: "q-value" }, it.text));
    }));
}

/** A control chart (p or u): points joined, centre line, step limits, out-of-control points marked. */
function controlChart(rows, key, { label, href }) {
  const width = 640, height = 240, left = 60, right = 12, top = 12, bottom = 36;
  if (!rows.length) return h("p", { class: "q-empty" }, "No evaluated inspections in this period");
  const top_ = Math.max(...rows.map((r) => Math.max(r[key], r.ucl)), 0.01) * 1.1;
  const step = (width - left - right) / rows.length;
  const x = (i) => left + step * (i + 0.5);
  const y = (v) => top + (height - top - bottom) * (1 - v / top_);
  const limit = (name) => rows.map((r, i) => `${i ? "L" : "M"}${(x(i) - step / 2).toFixed(1)},${y(r[name]).toFixed(1)}H${(x(i) + step / 2).toFixed(1)}`).join("");
  const fmt = (v) => (key === "p" ? `${(100 * v).toFixed(1)} %` : v.toFixed(2));
  const ticks = [0, top_ / 2, top_];
  return svg("svg", { class: "q-chart q-control", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    ticks.map((t) => svg("g", {}, svg("line", { x1: left, x2: width - right, y1: y(t), y2: y(t), class: "q-grid" }),
      svg("text", { x: left - 4, y: y(t) + 4, "text-anchor": "end", class: "q-axis" }, fmt(t)))),
    svg("path", { d: limit("ucl"), class: "q-limit" }), svg("path", { d: limit("lcl"), class: "q-limit" }),
    svg("line", { x1: left, x2: width - right, y1: y(rows[0].center), y2: y(rows[0].center), class: "q-center" }),
    svg("polyline", { points: rows.map((r, i) => `${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`).join(" "), class: "q-line" }),
    rows.map((r, i) => svg("a", { href: href(r), class: `q-point${r.out_of_control ? " ooc" : ""}`, "data-period": r.period },
      svg("title", {}, `${r.period}: ${fmt(r[key])} of n = ${r.n} (limits ${fmt(r.lcl)} – ${fmt(r.ucl)})${r.out_of_control ? " — out of control" : ""}`),
      svg("circle", { cx: x(i), cy: y(r[key]), r: r.out_of_control ? 6 : 4 }))),
    rows.map((r, i) => (rows.length <= 16 || i % Math.ceil(rows.length / 16) === 0
      ? svg("text", { x: x(i), y: height - 12, "text-anchor": "middle", class: "q-axis" }, r.period) : null)));
}

/** Pareto: bars by count, descending, with the cumulative percentage line. */
function paretoChart(rows, href) {
  const width = 640, height = 260, left = 70, right = 44, top = 16, bottom = 80;
  if (!rows.length) return h("p", { class: "q-empty" }, "No indications in this period");
  const max = rows[0].count;
  const step = (width - left - right) / rows.length;
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const yc = (p) => top + (height - top - bottom) * (1 - p / 100);
  return svg("svg", { class: "q-chart q-pareto", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Indications by type, Pareto" },
    rows.map((r, i) => svg("a", { href: href(r), class: "q-bar", "data-type": r.type },
      svg("title", {}, `${r.type}: ${r.count} (cumulative ${r.cumulative_percent} %)`),
      svg("rect", { x: left + i * step + step * 0.15, y: y(r.count), width: step * 0.7, height: y(0) - y(r.count) }),
      svg("text", { x: left + i * step + step / 2, y: y(r.count) - 4, "text-anchor": "middle", class: "q-value" }, r.count),
      svg("text", { x: left + i * step + step / 2, y: height - bottom + 14, "text-anchor": "end", class: "q-axis",
        transform: `rotate(-30 ${left + i * step + step / 2} ${height - bottom + 14})` }, r.type))),
    svg("polyline", { class: "q-cumulative", points: rows.map((r, i) => `${left + (i + 0.5) * step},${yc(r.cumulative_percent)}`).join(" ") }),
    svg("text", { x: width - right + 4, y: yc(100) + 4, class: "q-axis" }, "100 %"),
    svg("text", { x: width - right + 4, y: yc(80) + 4, class: "q-axis" }, "80 %"),
    svg("line", { x1: left, x2: width - right, y1: yc(80), y2: yc(80), class: "q-grid" }));
}

// -- pages ------------------------------------------------------------------------------

function filterForm(params, target) {
  const form = h("form", { class: "filters q-filters", role: "search", "aria-label": "Quality filters" },
    FILTERS.map(([name, label, type]) => h("label", {}, h("span", {}, label), h("input", { name, type: type || "text", value: params.get(name) || "" }))),
    h("label", {}, h("span", {}, "Period"), h("select", { name: "period" },
      ["month", "week"].map((p) => h("option", { value: p, selected: (params.get("period") || "month") === p }, p)))),
    h("label", {}, h("span", {}, "Compare by"), h("select", { name: "group_by" },
      GROUPS.map((g) => h("option", { value: g, selected: (params.get("group_by") || "welder") === g }, g)))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show"), h("a", { href: target }, "Reset")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) next.set(k, String(v).trim());
    location.hash = `${target}?${next}`;
  });
  return form;
}

/** #/quality: the dashboard. */
export async function qualityPage(main, params) {
  const filters = filtersOf(params);
  const period = params.get("period") === "week" ? "week" : "month";
  const groupBy = GROUPS.includes(params.get("group_by")) ? params.get("group_by") : "welder";
  const q = (table, extra = {}) => getJSON(`/api/quality/${table}?${withParams(filters, extra)}`);
  const [[total], groups, pareto, pchart, uchart, turnaround, quals] = await Promise.all([
    q("summary"), q("summary", { group_by: groupBy }), q("pareto"), q("p-chart", { period }), q("u-chart", { period }),
    q("turnaround"), q("qualifications"),
  ]);
  const signatures = quals.reduce((a, r) => a + r.signatures, 0);
  const valid = quals.reduce((a, r) => a + r.valid_signatures, 0);
  const tile = (label, value, href, cls = "") => h(href ? "a" : "div", { class: `q-tile ${cls}`, href },
    h("span", { class: "q-tile-value" }, value), h("span", { class: "q-tile-label" }, label));
  const ranked = groups.filter((g) => g.evaluated > 0).sort((a, b) => b.reject_rate - a.reject_rate || b.rejected - a.rejected);
  const worstRate = ranked.length ? ranked[0].reject_rate : 0;
  const groupFilter = (g) => ({ [groupBy]: g.group ?? "" });
  const ooc = pchart.filter((r) => r.out_of_control);
  mount(main,
    h("h1", {}, "Quality"),
    filterForm(params, "#/quality"),
    h("div", { class: "q-tiles" },
      tile("inspections", num(total.inspections), drill(filters, { outcome: "inspections" })),
      tile("evaluated", num(total.evaluated), drill(filters, { outcome: "evaluated" })),
      tile("reject rate", pct(total.reject_rate), drill(filters, { outcome: "rejected" }), "q-reject"),
      tile("first-pass yield", pct(total.first_pass_yield), drill(filters, { outcome: "first-pass-failed" })),
      tile("repaired", num(total.repaired), drill(filters, { outcome: "repaired" })),
      tile("signatures with a valid qualification", signatures ? pct(valid / signatures) : "–", null, valid < signatures ? "q-alarm" : ""),
      tile("out-of-control periods", String(ooc.length), null, ooc.length ? "q-alarm" : "")),
    h("div", { class: "q-grid2" },
      panel("pchart", `Fraction rejected per ${period} (p-chart, 3σ limits)`, withParams(filters, { period }), "p-chart",
        controlChart(pchart, "p", { label: "p-chart of the fraction rejected", href: (r) => { const [f, t] = periodRange(r.period); return drill(filters, { from: f, to: t, outcome: "rejected" }); } })),
      panel("groups", `Reject rate by ${groupBy}`, withParams(filters, { group_by: groupBy }), "summary",
        ranked.length ? barChart(ranked.map((g) => ({
          label: g.group ?? "(none)", value: g.reject_rate, text: `${pct(g.reject_rate)} (${g.rejected}/${g.evaluated})`,
          href: drill(filters, { ...groupFilter(g), outcome: "rejected" }), worst: g.reject_rate === worstRate && worstRate > 0,
          title: `${groupBy} ${g.group ?? "(none)"}: ${g.rejected} rejected of ${g.evaluated} evaluated`,
        })), { max: Math.max(worstRate, 0.01), label: `Reject rate by ${groupBy}`, cls: "q-groups" }) : h("p", { class: "q-empty" }, "No evaluated inspections"),
        tableOf([groupBy, "inspections", "evaluated", "rejected", "reject rate", "repaired", "first-pass yield"], groups,
          (g) => [h("a", { href: drill(filters, { ...groupFilter(g), outcome: "inspections" }) }, g.group ?? "(none)"), g.inspections, g.evaluated, g.rejected, pct(g.reject_rate), g.repaired, pct(g.first_pass_yield)])),
      panel("pareto", "Indications by type (Pareto)", filters, "pareto",
        paretoChart(pareto, (r) => drill(filters, { type: r.type, outcome: "inspections" }))),
      panel("uchart", `Indications per inspection per ${period} (u-chart)`, withParams(filters, { period }), "u-chart",
        controlChart(uchart, "u", { label: "u-chart of indications per inspection", href: (r) => { const [f, t] = periodRange(r.period); return drill(filters, { from: f, to: t, outcome: "evaluated" }); } })),
      panel("turnaround", "Turnaround and backlog", filters, "turnaround",
        tableOf(["step", "completed", "mean h", "longest h", "waiting", "oldest waiting h"], turnaround,
          (r) => [r.step, r.completed, num(r.mean_hours), num(r.max_hours), r.backlog, num(r.oldest_waiting_hours)])),
      panel("qualifications", "Qualifications: signatures and expiry", withParams(filters, {}), "qualifications",
        tableOf(["person", "method", "level", "valid until", "vision test until", "expires", "signatures", "valid"],
          [...quals].sort((a, b) => (a.expires_within_months ?? 99) - (b.expires_within_months ?? 99)),
          (r) => [r.full_name || r.user, r.method, num(r.level), num(r.valid_until), num(r.vision_test_valid_until),
            h("span", { class: r.expires_within_months === 0 ? "q-alarm" : r.expires_within_months ? "q-warn" : "" },
              r.expires_within_months === 0 ? "expired" : r.expires_within_months ? `within ${r.expires_within_months} month${r.expires_within_months > 1 ? "s" : ""}` : r.level === null ? "no qualification" : "later"),
            r.signatures, h("span", { class: r.valid_signatures < r.signatures ? "q-alarm" : "" }, r.valid_signatures)]))));
}

/** #/quality/inspections?...: the inspections behind a figure, each a link to its radiographs. */
export async function qualityListPage(main, params) {
  const filters = filtersOf(params);
  const outcome = Object.hasOwn(OUTCOMES, params.get("outcome")) ? params.get("outcome") : "inspections";
  const extra = { outcome, type: params.get("type") || "" };
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const page = await getJSON(`/api/quality/inspections?${withParams(filters, { ...extra, limit: 100, offset })}`);
  const described = [...filters.entries()].map(([k, v]) => `${k} ${v}`).concat(extra.type ? [`type ${extra.type}`] : []).join(", ");
  const more = (delta) => `#/quality/inspections?${withParams(params, { offset: offset + delta })}`;
  mount(main,
    h("h1", {}, `Inspections: ${OUTCOMES[outcome]}`),
    h("p", { class: "q-criteria" }, described || "all periods", " · ", h("a", { href: `#/quality?${filters}` }, "back to the dashboard"), " · ",
      csvLink("inspections", withParams(filters, { ...extra, limit: 500, offset: 0 }))),
    h("p", { class: "q-total", "data-total": page.total }, `${page.total} inspection${page.total === 1 ? "" : "s"}`),
    tableOf(["date", "serial", "component", "welders", "company", "inspector", "method", "disposition", "indications"], page.items,
      (i) => [h("a", { href: `#/inspection/${enc(i.uid)}`, class: "q-open" }, fmtDate(i.date) || "(no date)"), i.serial, i.component || "",
        i.welders.join(", "), i.company || "", i.inspector || "", i.method || "", i.disposition || "", i.indications]),
    h("nav", { class: "pager" }, offset > 0 ? h("a", { href: more(-100) }, "previous") : null,
      offset + page.items.length < page.total ? h("a", { href: more(100) }, "next") : null));
}
