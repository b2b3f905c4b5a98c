// Evaluation on the inspection page (issue 14): the status (received / evaluated / approved /
// rejected / on hold) with the device's own ApprovalStatus beside it; the evaluation form
// (overall and per-indication dispositions, acceptance standard, comment, repair ID) for those
// /api/me says may record a disposition in the inspection's method; signing (the password entered
// again, 21 CFR 11.200); the signatures with meaning, signer, time and qualification, invalidated
// ones marked; the PDF report once released. Every value from the archive is set as text.

import { ApiError, currentUser, enc, getJSON, postJSON } from "./api.js";
import { fmtDate, h, mount, status } from "./dom.js";
import { indicationTypes, sizeText } from "./indications.js";

export const DISPOSITIONS = [["ACCEPT", "Accept"], ["REJECT", "Reject"], ["HOLD", "Hold"]];
const STATUS_TEXT = { received: "received", evaluated: "evaluated", approved: "approved", rejected: "rejected", "on-hold": "on hold" };
const MEANING_TEXT = { evaluated: "Evaluated", reviewed: "Reviewed", approved: "Approved" };
// Which NDT methods (qualifications) cover a modality: the core's table (storage/records/evaluations.py).
const MODALITY_METHODS = {
  DX: ["RT", "DR"], DR: ["RT", "DR"], CR: ["RT", "CR"], RG: ["RT"], RF: ["RT"], XA: ["RT"], PX: ["RT"], IO: ["RT"], MG: ["RT"], OT: ["RT"],
  CT: ["CT"], US: ["UT", "PAUT", "TOFD"], UT: ["UT", "PAUT", "TOFD"], EC: ["ET"], ET: ["ET"], TG: ["TT"], TT: ["TT"],
};
const DERIVED = new Set(["PR", "DOC", "SR", "KO"]); // what the archive adds to an inspection itself

/** The status of an inspection as a badge, with the device's ApprovalStatus beside it when sent. */
export function statusBadge(value, deviceStatus) {
  const s = value || "received";
  return h("span", { class: "eval-status-box" },
    h("span", { class: `status-badge status-${s}`, "data-status": s }, STATUS_TEXT[s] || s),
    deviceStatus ? h("span", { class: "device-status", title: "ApprovalStatus (300E,0002) the device sent" }, ` device: ${deviceStatus}`) : null);
}

/** The search filter on the evaluation status (GET /api/components|inspections?status=). */
export function statusFilter(current) {
  return h("label", {}, h("span", {}, "Status"), h("select", { name: "status" },
    ["", ...Object.keys(STATUS_TEXT)].map((s) => h("option", { value: s, selected: (current || "") === s }, s ? STATUS_TEXT[s] : "any"))));
}

/** May the signed-in user use *permission* (evaluations:write / evaluations:approve) on an inspection of *modalities*? */
export function mayFor(permission, modalities) {
  const me = currentUser();
  if (!me) return { allowed: false, reason: "not signed in" };
  const methods = [...new Set(modalities.filter((m) => !DERIVED.has(m)).flatMap((m) => MODALITY_METHODS[m] || []))];
  let reason = me.denied?.[permission] || "no NDT method covers this inspection's modalities";
  for (const method of methods) {
    const d = me.methods?.[method]?.[permission];
    if (d?.allowed) return { allowed: true, reason: "", method };
    if (d && method === methods[0]) reason = d.reason;
  }
  return { allowed: false, reason };
}

function utc(value) { return value ? `${String(value).slice(0, 19).replace("T", " ")} UTC` : ""; }

/** The inspectors' indications of every image of inspection *i* (newest versions), with where they are. */
async function inspectionIndications(i) {
  const images = i.series.filter((s) => !DERIVED.has(s.modality)).flatMap((s) => s.images.map((img) => ({ series: s, img }))).slice(0, 400);
  const out = [];
  let next = 0;
  async function worker() {
    while (next < images.length) {
      const { series, img } = images[next++];
      const page = await getJSON(`/api/images/${enc(img.uid)}/indications`);
      for (const it of page.items) if (!it.withdrawn) out.push({ ...it, series, img });
    }
  }
  await Promise.all([worker(), worker(), worker()]);
  return out.sort((a, b) => a.number - b.number);
}

/** The evaluation section of the inspection page: filled once the archive has answered. */
export function evaluationSection(inspection) {
  const box = h("section", { class: "evaluation", "aria-label": "Evaluation", "data-state": "loading" }, h("h2", {}, "Evaluation"), h("p", {}, "Loading…"));
  refresh(box, inspection);
  return box;
}

async function refresh(box, inspection) {
  box.dataset.state = "loading";
  try {
    const [state, indications, standards, types, component] = await Promise.all([
      getJSON(`/api/inspections/${enc(inspection.uid)}/evaluation`),
      inspectionIndications(inspection),
      getJSON("/api/acceptance-standards"),
      indicationTypes(),
      getJSON(`/api/components/${enc(inspection.component.serial)}`).catch(() => null),
    ]);
    // A re-inspection references an earlier inspection of the same component.
    const earlier = (component?.inspections || []).filter((x) => x.uid !== inspection.uid && (x.date || "") <= (inspection.date || "")).reverse();
    render(box, inspection, state, indications, standards, new Map(types.map((t) => [t.code, t.meaning])), earlier);
    box.dataset.state = "loaded";
    box.dataset.status = state.status;
  } catch (err) {
    mount(box, h("h2", {}, "Evaluation"), h("p", { class: "error", role: "alert" }, `Cannot load the evaluation: ${err.message}`));
    box.dataset.state = "failed";
  }
}

function render(box, inspection, state, indications, standards, meanings, earlier) {
  const me = currentUser();
  const ev = state.evaluation;
  const modalities = inspection.modalities || [];
  const canEvaluate = mayFor("evaluations:write", modalities);
  const canApprove = mayFor("evaluations:approve", modalities);
  const valid = state.signatures.filter((s) => s.valid);
  const evaluatedBy = valid.find((s) => s.meaning === "evaluated");
  const approvedBy = valid.find((s) => s.meaning === "approved");
  const again = () => refresh(box, inspection);
  const released = ["approved", "rejected", "on-hold"].includes(state.status);

  const summary = ev
    ? h("dl", { class: "facts eval-summary" },
      h("dt", {}, "Disposition"), h("dd", { class: `disp disp-${ev.disposition}` }, ev.disposition),
      h("dt", {}, "Acceptance standard"), h("dd", {}, ev.standard_meaning || ev.standard),
      ev.comment ? [h("dt", {}, "Comment"), h("dd", { class: "eval-comment" }, ev.comment)] : null,
      ev.repair_id ? [h("dt", {}, "Repair ID"), h("dd", {}, ev.repair_id)] : null,
      ev.reinspection_of ? [h("dt", {}, "Re-inspection of"), h("dd", {}, h("a", { href: `#/inspection/${enc(ev.reinspection_of)}` }, ev.reinspection_of))] : null,
      h("dt", {}, "Recorded"), h("dd", {}, `attempt ${ev.attempt} · ${ev.author} · ${utc(ev.created_at)}${ev.reason ? ` · reason: ${ev.reason}` : ""}`))
    : h("p", { class: "eval-none" }, "Not evaluated yet.");

  const table = indications.length
    ? h("table", { class: "grid ind-table", "aria-label": "Indications of this inspection" },
      h("thead", {}, h("tr", {}, ["#", "Type", "Label", "Size", "Version", "Image", "Disposition"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, indications.map((it) => h("tr", { "data-id": it.id },
        h("td", { class: "num" }, it.number), h("td", {}, meanings.get(it.type) || it.type), h("td", {}, it.label || ""),
        h("td", {}, sizeText(it.sizes)), h("td", { class: "num" }, it.version),
        h("td", {}, h("a", { href: `#/image/${enc(inspection.uid)}/${enc(it.series.uid)}/${enc(it.image_uid)}` }, `${it.series.modality || ""} image ${it.img.number ?? ""}`)),
        h("td", { class: "ind-disp" }, ev?.indications?.[String(it.id)] || "")))))
    : h("p", {}, "No indications marked on this inspection's images.");

  const sigs = state.signatures.length
    ? h("table", { class: "grid signatures", "aria-label": "Signatures" },
      h("thead", {}, h("tr", {}, ["Meaning", "Signer", "Time (UTC)", "Qualification", "Attempt", "State"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, state.signatures.map((s) => h("tr", { class: s.valid ? "sig-valid" : "sig-invalid", "data-meaning": s.meaning, "data-signer": s.signer },
        h("td", {}, MEANING_TEXT[s.meaning] || s.meaning), h("td", {}, `${s.printed_name} (${s.signer})`), h("td", {}, utc(s.signed_at)),
        h("td", {}, qualificationText(s.qualification)), h("td", { class: "num" }, s.evaluation_attempt),
        h("td", { class: "sig-state" }, s.valid ? "valid" : h("strong", { class: "invalidated" }, "invalidated: signed content changed"))))))
    : h("p", { class: "sig-none" }, "No signatures.");

  const signButtons = [];
  if (ev && canEvaluate.allowed && !evaluatedBy) signButtons.push(h("button", { type: "button", class: "sign", "data-meaning": "evaluated", onclick: () => signDialog(inspection, "evaluated", again) }, "Sign as evaluator…"));
  if (ev && canApprove.allowed && evaluatedBy && !approvedBy) {
    if (evaluatedBy.signer === me?.username) signButtons.push(h("p", { class: "meta" }, "You signed as evaluator; another Level 3 person approves."));
    else signButtons.push(h("button", { type: "button", class: "sign", "data-meaning": "approved", onclick: () => signDialog(inspection, "approved", again) }, "Approve and sign…"));
  }

  mount(box,
    h("h2", {}, "Evaluation"),
    h("p", { class: "eval-status-line" }, h("span", { class: "meta" }, "Status "), statusBadge(state.status, state.device_approval_status)),
    summary,
    h("h3", {}, `Indications (${indications.length})`), table,
    h("h3", {}, "Signatures"), sigs,
    signButtons.length ? h("div", { class: "sign-actions" }, signButtons) : null,
    state.report_url ? h("p", { class: "report" }, h("a", { href: state.report_url, class: "report-link", target: "_blank", rel: "noopener" }, "PDF inspection report"),
      released ? null : h("span", { class: "report-stale" }, " — of the earlier release; its signatures are invalidated, this evaluation is not released")) : null,
    state.reinspections.length ? h("p", {}, "Re-inspected in: ", state.reinspections.map((u, k) => [k ? ", " : "", h("a", { href: `#/inspection/${enc(u)}` }, u)])) : null,
    canEvaluate.allowed
      ? (ev ? h("details", { class: "eval-again" }, h("summary", {}, `Evaluate again (attempt ${ev.attempt + 1})…`), evaluationForm(inspection, state, indications, standards, meanings, earlier, again))
        : evaluationForm(inspection, state, indications, standards, meanings, earlier, again))
      : h("p", { class: "meta eval-why" }, `You may not record a disposition: ${canEvaluate.reason}.`));
}

function qualificationText(q) {
  if (!q || !q.method) return "";
  return [`${q.method} Level ${q.level}`, q.certificate ? `certificate ${q.certificate}` : "", q.issuer || "", q.valid_until ? `valid until ${fmtDate(q.valid_until)}` : ""].filter(Boolean).join(" · ");
}

function evaluationForm(inspection, state, indications, standards, meanings, earlier, again) {
  const ev = state.evaluation;
  const radios = (name, current, label) => h("fieldset", { class: "disp-choice" }, h("legend", {}, label),
    DISPOSITIONS.map(([v, text]) => h("label", {}, h("input", { type: "radio", name, value: v, checked: current === v, required: true }), text)));
  const standard = h("select", { name: "standard", required: true }, h("option", { value: "" }, "— choose —"),
    standards.map((s) => h("option", { value: s.code, selected: ev?.standard === s.code }, s.meaning)));
  const comment = h("textarea", { name: "comment", rows: "3", maxlength: "4000" });
  comment.value = ev?.comment || "";
  const repair = h("input", { name: "repair_id", maxlength: "64", value: ev?.repair_id || "" });
  const reinspection = h("select", { name: "reinspection_of" }, h("option", { value: "" }, "— not a re-inspection —"),
    earlier.map((x) => h("option", { value: x.uid, selected: ev?.reinspection_of === x.uid }, `${fmtDate(x.date) || "(no date)"} · ${x.modalities.join(", ")} · ${x.description || x.uid}`)));
  const signed = state.signatures.length > 0;
  const reason = signed ? h("input", { name: "reason", maxlength: "500", required: true }) : null;
  const error = h("p", { class: "error", role: "alert" });
  error.hidden = true;
  const perIndication = indications.map((it) => h("div", { class: "ind-disp-row", "data-id": it.id },
    radios(`ind-${it.id}`, ev?.indications?.[String(it.id)], `#${it.number} ${meanings.get(it.type) || it.type}${it.label ? ` — ${it.label}` : ""} (${sizeText(it.sizes) || "no size"})`)));
  const form = h("form", { class: "eval-form", "aria-label": "Record an evaluation" },
    ev ? null : h("h3", {}, "Record the evaluation"),
    radios("disposition", ev?.disposition, "Overall disposition"),
    perIndication,
    h("label", {}, h("span", {}, "Acceptance standard"), standard),
    h("label", {}, h("span", {}, "Comment"), comment),
    h("label", {}, h("span", {}, "Repair ID (rejected weld)"), repair),
    earlier.length ? h("label", {}, h("span", {}, "Re-inspection of"), reinspection) : null,
    reason ? h("label", {}, h("span", {}, "Reason for the change (required: the inspection is signed)"), reason) : null,
    error,
    h("button", { type: "submit" }, "Record evaluation"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = {
      disposition: data.get("disposition"), standard: data.get("standard"),
      indications: Object.fromEntries(indications.map((it) => [String(it.id), data.get(`ind-${it.id}`)])),
      comment: String(data.get("comment") || "").trim() || null, repair_id: String(data.get("repair_id") || "").trim() || null,
      reinspection_of: data.get("reinspection_of") || null,
    };
    if (reason) body.reason = reason.value.trim();
    error.hidden = true;
    try {
      const saved = await postJSON(`/api/inspections/${enc(inspection.uid)}/evaluation`, body);
      status(`Evaluation recorded (attempt ${saved.attempt}, ${saved.disposition}).`);
      again();
    } catch (err) {
      error.textContent = `Not recorded: ${err.message}`;
      error.hidden = false;
    }
  });
  return form;
}

/** Ask for the password again and sign (21 CFR 11.200(a): a session alone never signs). */
function signDialog(inspection, meaning, again) {
  const me = currentUser();
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  error.hidden = true;
  const what = meaning === "approved" ? "approve this evaluation" : "sign this evaluation as its evaluator";
  const form = h("form", { method: "dialog", class: "sign-form" },
    h("h3", {}, meaning === "approved" ? "Approve and sign" : "Sign as evaluator"),
    h("p", {}, `You, ${me?.full_name || me?.username || ""} (${me?.username || ""}), ${what}. The signature records your name, the UTC time, the meaning "${meaning}", your qualification and the SHA-256 of what is signed.`),
    h("label", {}, h("span", {}, "Password (entered again to sign)"), password),
    error,
    h("div", { class: "ind-form-actions" }, h("button", { type: "submit", value: "sign" }, "Sign"), h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
  const dialog = h("dialog", { class: "sign-dialog", "aria-label": "Electronic signature" }, form);
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      const result = await postJSON(`/api/inspections/${enc(inspection.uid)}/signatures`, { meaning, password: password.value });
      password.value = "";
      dialog.close();
      status(`Signed (${meaning}); status ${STATUS_TEXT[result.status] || result.status}${result.released ? ", released" : ""}.`);
      again();
    } catch (err) {
      password.value = "";
      error.textContent = err instanceof ApiError && err.status === 0 ? err.message : `Not signed: ${err.message}`;
      error.hidden = false;
      password.focus();
    }
  });
  dialog.showModal();
  password.focus();
}
