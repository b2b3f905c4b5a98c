// Building DOM safely: text is always set with textContent, never parsed as HTML.

/** Create an element: h("a", {href: "#/x", class: "k"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of *el*. */
export function mount(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  return el;
}

/** YYYYMMDD -> YYYY-MM-DD (anything else unchanged). */
export function fmtDate(value) {
  if (!value) return "";
  const s = String(value);
  return /^\d{8}$/.test(s) ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}` : s;
}

/** DICOM PN "Family^Given" -> "Given Family"-ish readable text. */
export function fmtName(value) {
  if (!value) return "";
  return String(value).split("^").filter(Boolean).join(" ");
}

export function status(text) {
  const el = document.getElementById("status");
  if (el) el.textContent = text || "";
}

/** "1 image", "2 images", "0 series" (irregular plural as the third argument). */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/** Parse a date typed as YYYY-MM-DD (or YYYYMMDD) into DICOM's YYYYMMDD; null when it is not a date. */
export function parseIsoDate(text) {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(String(text || "").trim());
  if (!m) return null;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]) ? `${m[1]}${m[2]}${m[3]}` : null;
}
