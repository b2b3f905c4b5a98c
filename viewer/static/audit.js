// The auditor's pages:
//   #/audit?...             search the audit log (time, actor, action, serial, inspection, outcome), paged
//   #/history/<serial>      everything that happened to one component, oldest first, and its evidence bundle
import { enc, getJSON } from "./api.js";
import { fmtName, h, mount } from "./dom.js";

const FIELDS = [["from", "From", "date"], ["to", "To", "date"], ["actor", "Actor", "text"], ["action", "Action", "text"],
  ["serial", "Serial / component", "text"], ["study", "Inspection UID", "text"], ["outcome", "Outcome", "text"]];

function shortHash(hash) { return hash ? `${hash.slice(0, 12)}…` : ""; }

function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") : ""; }

/** The audit log search page. */
export async function auditPage(main, params, crumb) {
  crumb({ label: "Audit log" });
  document.title = "Audit log · ndt-pacs";
  const form = h("form", { class: "filters", role: "search", "aria-label": "Audit filters" },
    FIELDS.map(([name, label, type]) => h("label", {}, h("span", {}, label),
      h("input", { name, type, value: params.get(name) || "" }))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search"), h("a", { href: "#/audit" }, "Reset")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, String(v));
    location.hash = `#/audit?${next}`;
  });
  const results = h("section", { class: "results", "aria-label": "Audit entries" }, "Searching…");
  mount(main, h("h1", {}, "Audit log"), form, results);
  const query = new URLSearchParams(params);
  query.set("limit", params.get("limit") || "50");
  try {
    const page = await getJSON(`/api/audit?${query}`);
    mount(results, auditTable(page, params));
  } catch (err) {
    mount(results, h("p", { class: "error", role: "alert" }, `Search failed: ${err.message}`));
  }
}

function auditTable(page, params) {
  const link = (offset) => { const p = new URLSearchParams(params); p.set("offset", String(offset)); return `#/audit?${p}`; };
  const rows = page.items.map((e) => h("tr", { class: e.outcome === "failure" ? "failed" : null },
    h("td", { class: "num" }, e.id), h("td", {}, when(e.occurred_at)), h("td", {}, e.actor),
    h("td", {}, e.actor_address || ""), h("td", {}, e.action), h("td", {}, e.outcome),
    h("td", {}, e.detail && e.detail.serial ? h("a", { href: `#/history/${enc(e.detail.serial)}` }, e.detail.serial) : ""),
    h("td", { class: "uid" }, e.study_instance_uid ? h("a", { href: `#/inspection/${enc(e.study_instance_uid)}` }, e.study_instance_uid) : ""),
    h("td", { class: "hash", title: e.hash }, shortHash(e.hash))));
  const head = h("tr", {}, ["#", "Time", "Actor", "Address", "Action", "Outcome", "Component", "Inspection", "Chain hash"]
    .map((label) => h("th", { scope: "col" }, label)));
  const { offset, limit, total } = page;
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    h("span", {}, total ? `${offset + 1}–${Math.min(offset + limit, total)} of ${total}` : "No matches"),
    offset > 0 ? h("a", { href: link(Math.max(0, offset - limit)) }, "‹ Newer") : null,
    offset + limit < total ? h("a", { href: link(offset + limit), rel: "next" }, "Older ›") : null);
  return [h("table", { class: "grid audit" }, h("thead", {}, head), h("tbody", {}, rows)), pager];
}

/** A component's whole history, and its evidence bundle. */
export async function historyPage(main, serial, crumb) {
  const history = await getJSON(`/api/components/${enc(serial)}/history`);
  crumb({ label: "Audit log", href: "#/audit" }, { label: `History of ${history.serial}` });
  document.title = `History ${history.serial} · ndt-pacs`;
  const items = history.events.map((e) => h("li", { class: `event-${e.kind}` },
    h("time", { datetime: e.at }, when(e.at)),
    h("div", { class: "event" },
      h("span", { class: "badge" }, e.kind), " ", e.summary,
      h("div", { class: "meta" }, [e.actor || "", e.study_instance_uid ? `inspection ${e.study_instance_uid}` : "",
        e.sop_instance_uid ? `image ${e.sop_instance_uid}` : "", e.detail && e.detail.sha256 ? `SHA-256 ${e.detail.sha256}` : ""]
        .filter(Boolean).join(" · ")))));
  mount(main,
    h("h1", {}, `History of ${history.serial}`, history.name ? h("span", { class: "sub" }, ` — ${fmtName(history.name)}`) : null),
    h("p", {}, `${history.inspections.length} inspection${history.inspections.length === 1 ? "" : "s"}, ${history.events.length} events. `,
      h("a", { href: `/api/components/${enc(history.serial)}/evidence`, download: "", class: "button", id: "evidence" }, "Download evidence bundle"),
      " — a zip of the originals, the audit entries with their chain hashes and a manifest; run its verify.py to check it offline."),
    h("p", {}, h("a", { href: `#/audit?serial=${enc(history.serial)}` }, "Audit entries of this component")),
    h("ol", { class: "timeline history", "aria-label": "Events, oldest first" }, items));
}
