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
