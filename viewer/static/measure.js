// Measurement math in image coordinates (x = column, y = row, in full-resolution pixels).

/** Physical length of the segment a-b; spacing = {row_mm, column_mm, attribute, words} (the API's Spacing) or null. */
export function length(a, b, spacing) {
  const dx = b.x - a.x, dy = b.y - a.y;
  const px = Math.hypot(dx, dy);
  if (!spacing) return { value: px, unit: "px", text: `${px.toFixed(1)} px (no pixel spacing)`, px };
  const mm = Math.hypot(dx * spacing.column_mm, dy * spacing.row_mm);
  return { value: mm, unit: "mm", text: `${mm.toFixed(2)} mm (${spacing.words || spacing.attribute})`, px };
}

/** Angle at vertex b between b->a and b->c, in degrees (physical when spacing is anisotropic). */
export function angle(a, b, c, spacing) {
  const sx = spacing ? spacing.column_mm : 1, sy = spacing ? spacing.row_mm : 1;
  const u = [(a.x - b.x) * sx, (a.y - b.y) * sy], v = [(c.x - b.x) * sx, (c.y - b.y) * sy];
  const cos = (u[0] * v[0] + u[1] * v[1]) / (Math.hypot(...u) * Math.hypot(...v) || 1);
  const deg = (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
  return { value: deg, text: `${deg.toFixed(1)}°` };
}

/** Value of stored pixel (x, y) of a frame in modality units, or null outside. */
export function valueAt(frame, x, y, slope = 1, intercept = 0, scale = 1) {
  const c = Math.floor(x / scale), r = Math.floor(y / scale);
  if (c < 0 || r < 0 || c >= frame.columns || r >= frame.rows) return null;
  const i = r * frame.columns + c;
  if (frame.samples === 3) return [frame.data[i * 3], frame.data[i * 3 + 1], frame.data[i * 3 + 2]];
  return frame.data[i] * slope + intercept;
}

/** Statistics of the pixels inside a rectangle or ellipse with corners a, b. */
export function roi(frame, a, b, shape, spacing, slope = 1, intercept = 0, scale = 1) {
  const x0 = Math.min(a.x, b.x), x1 = Math.max(a.x, b.x), y0 = Math.min(a.y, b.y), y1 = Math.max(a.y, b.y);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, rx = (x1 - x0) / 2 || 0.5, ry = (y1 - y0) / 2 || 0.5;
  let n = 0, sum = 0, sum2 = 0, min = Infinity, max = -Infinity;
  const c0 = Math.max(0, Math.floor(x0 / scale)), c1 = Math.min(frame.columns - 1, Math.ceil(x1 / scale));
  const r0 = Math.max(0, Math.floor(y0 / scale)), r1 = Math.min(frame.rows - 1, Math.ceil(y1 / scale));
  const samples = frame.samples || 1;
  for (let r = r0; r <= r1; r++) {
    const py = (r + 0.5) * scale;
    if (py < y0 || py > y1) continue;
    for (let c = c0; c <= c1; c++) {
      const px = (c + 0.5) * scale;
      if (px < x0 || px > x1) continue;
      if (shape === "ellipse" && ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 > 1) continue;
      const v = frame.data[(r * frame.columns + c) * samples] * slope + intercept;
      n++; sum += v; sum2 += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (!n) return { n: 0, text: "empty" };
  const mean = sum / n;
  const std = Math.sqrt(Math.max(0, sum2 / n - mean * mean));
  const snr = std > 0 ? mean / std : Infinity;
  let area = shape === "ellipse" ? Math.PI * rx * ry : (x1 - x0) * (y1 - y0);
  const areaText = spacing ? `${(area * spacing.row_mm * spacing.column_mm).toFixed(2)} mm²` : `${area.toFixed(0)} px²`;
  const f = (v) => (Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2));
  return {
    n, mean, std, min, max, snr,
    text: `mean ${f(mean)} · SD ${f(std)} · min ${f(min)} · max ${f(max)} · SNR ${isFinite(snr) ? snr.toFixed(1) : "∞"} · ${areaText}`,
  };
}

/** Grey values along a-b sampled once per pixel (nearest neighbour); distances in mm or px. */
export function profile(frame, a, b, spacing, slope = 1, intercept = 0, scale = 1) {
  const len = Math.hypot(b.x - a.x, b.y - a.y);
  const steps = Math.max(1, Math.round(len / scale));
  const points = [];
  const total = length(a, b, spacing).value;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    const v = valueAt(frame, a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, slope, intercept, scale);
    if (v !== null && !Array.isArray(v)) points.push([t * total, v]);
  }
  return { points, unit: spacing ? "mm" : "px" };
}

/** Draw a profile plot into a canvas. */
export function plotProfile(canvas, prof) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.fillStyle = "#111"; ctx.fillRect(0, 0, w, h);
  if (!prof.points.length) return;
  const xs = prof.points.map((p) => p[0]), ys = prof.points.map((p) => p[1]);
  const xmax = Math.max(...xs) || 1, ymin = Math.min(...ys), ymax = Math.max(...ys);
  const yspan = ymax - ymin || 1;
  ctx.strokeStyle = "#555"; ctx.strokeRect(pad, 4, w - pad - 4, h - pad);
  ctx.fillStyle = "#bbb"; ctx.font = "10px sans-serif";
  ctx.fillText(String(Math.round(ymax)), 2, 12);
  ctx.fillText(String(Math.round(ymin)), 2, h - pad);
  ctx.fillText(`${xmax.toFixed(1)} ${prof.unit}`, w - 60, h - 8);
  ctx.fillText(`0`, pad, h - 8);
  ctx.strokeStyle = "#ffd54a"; ctx.beginPath();
  prof.points.forEach(([x, y], i) => {
    const px = pad + (x / xmax) * (w - pad - 4), py = 4 + (1 - (y - ymin) / yspan) * (h - pad - 4);
    if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
  });
  ctx.stroke();
}
