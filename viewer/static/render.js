// Window/level on raw stored values, in the browser (PS3.3 C.11.2.1.2 linear VOI LUT).
// A lookup table over the whole stored-value range turns one frame into RGBA in one pass.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function pack(g) {
  return LITTLE_ENDIAN ? (0xff000000 | (g << 16) | (g << 8) | g) >>> 0 : ((g << 24) | (g << 16) | (g << 8) | 0xff) >>> 0;
}

/** Grey level (0..255) of a modality value m for window (center c, width w). */
export function windowValue(m, c, w, invert) {
  let y;
  if (w <= 1) y = m <= c - 0.5 ? 0 : 255;
  else y = ((m - (c - 0.5)) / (w - 1) + 0.5) * 255;
  y = y < 0 ? 0 : y > 255 ? 255 : Math.round(y);
  return invert ? 255 - y : y;
}

function lutInfo(data) {
  if (data instanceof Uint8Array) return { size: 256, offset: 0 };
  if (data instanceof Int8Array) return { size: 256, offset: 128 };
  if (data instanceof Uint16Array) return { size: 65536, offset: 0 };
  if (data instanceof Int16Array) return { size: 65536, offset: 32768 };
  return null; // 32-bit and float: computed per pixel
}

/**
 * Render frame {data, rows, columns, samples} into *imageData* (same size) for the
 * window {center, width} given in modality units (value * slope + intercept); only the pixels
 * of *rect* {x0, y0, x1, y1} (end exclusive) when given, else all of them.
 */
export function renderFrame(frame, imageData, view, rect = null) {
  const { center, width, invert, slope = 1, intercept = 0 } = view;
  const out = new Uint32Array(imageData.data.buffer);
  const data = frame.data, columns = frame.columns;
  const { x0, y0, x1, y1 } = rect || { x0: 0, y0: 0, x1: columns, y1: frame.rows };
  if (x1 <= x0 || y1 <= y0) return;
  const info = lutInfo(data);
  if (frame.samples === 3) {
    const lut = new Uint8Array(256);
    for (let s = 0; s < 256; s++) lut[s] = windowValue(s * slope + intercept, center, width, invert);
    const px = imageData.data;
    for (let y = y0; y < y1; y++) {
      for (let i = y * columns + x0, end = y * columns + x1; i < end; i++) {
        const j = i * 3, k = i * 4;
        px[k] = lut[data[j]]; px[k + 1] = lut[data[j + 1]]; px[k + 2] = lut[data[j + 2]]; px[k + 3] = 255;
      }
    }
    return;
  }
  if (info) {
    const lut = new Uint32Array(info.size);
    for (let i = 0; i < info.size; i++) lut[i] = pack(windowValue((i - info.offset) * slope + intercept, center, width, invert));
    const off = info.offset;
    for (let y = y0; y < y1; y++) {
      const end = y * columns + x1;
      if (off === 0) for (let i = y * columns + x0; i < end; i++) out[i] = lut[data[i]];
      else for (let i = y * columns + x0; i < end; i++) out[i] = lut[data[i] + off];
    }
    return;
  }
  for (let y = y0; y < y1; y++) {
    for (let i = y * columns + x0, end = y * columns + x1; i < end; i++) out[i] = pack(windowValue(data[i] * slope + intercept, center, width, invert));
  }
}

/**
 * Frame {data, rows, columns, scale} reduced by *d*: each d x d block becomes its mean (blocks at
 * the right and bottom edges may be partial), in the same value type. One sample per pixel.
 */
export function reduceFrame(frame, d) {
  const { rows, columns, data } = frame;
  const r2 = Math.ceil(rows / d), c2 = Math.ceil(columns / d);
  const out = new data.constructor(r2 * c2);
  const block = new Int32Array(columns); // column -> block column
  const width = new Float64Array(c2); // pixels per block column
  for (let c = 0; c < columns; c++) { block[c] = (c / d) | 0; width[block[c]]++; }
  const round = data instanceof Float32Array || data instanceof Float64Array ? (v) => v : Math.round;
  const sums = new Float64Array(c2);
  for (let R = 0; R < r2; R++) {
    sums.fill(0);
    const r0 = R * d, r1 = Math.min(rows, r0 + d);
    for (let r = r0; r < r1; r++) {
      const base = r * columns;
      for (let c = 0; c < columns; c++) sums[block[c]] += data[base + c];
    }
    const n = r1 - r0;
    for (let C = 0; C < c2; C++) out[R * c2 + C] = round(sums[C] / (width[C] * n));
  }
  return { data: out, rows: r2, columns: c2, samples: 1, scale: (frame.scale || 1) * d };
}

/** Min, max and the 0.5 % / 99.5 % percentiles of a frame, in modality units (sampled). */
export function statistics(frame, slope = 1, intercept = 0) {
  const data = frame.data;
  const step = Math.max(1, Math.floor(data.length / 2_000_000));
  let min = Infinity, max = -Infinity;
  for (let i = 0; i < data.length; i += step) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!isFinite(min)) { min = 0; max = 0; }
  const bins = 4096;
  const hist = new Uint32Array(bins);
  const span = max - min || 1;
  let count = 0;
  for (let i = 0; i < data.length; i += step) {
    hist[Math.min(bins - 1, Math.floor(((data[i] - min) / span) * bins))]++;
    count++;
  }
  const at = (q) => {
    let acc = 0;
    for (let b = 0; b < bins; b++) { acc += hist[b]; if (acc >= q * count) return min + (b / bins) * span; }
    return max;
  };
  const m = (v) => v * slope + intercept;
  const lo = m(at(0.005)), hi = m(at(0.995) + span / bins);
  return { min: Math.min(m(min), m(max)), max: Math.max(m(min), m(max)), low: Math.min(lo, hi), high: Math.max(lo, hi) };
}

/** A small auto-windowed canvas of a frame (thumbnails). */
export function thumbnailCanvas(frame, slope = 1, intercept = 0, invert = false) {
  const canvas = document.createElement("canvas");
  canvas.width = frame.columns;
  canvas.height = frame.rows;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(frame.columns, frame.rows);
  const s = statistics(frame, slope, intercept);
  renderFrame(frame, img, { center: (s.low + s.high) / 2, width: Math.max(1, s.high - s.low), invert, slope, intercept });
  ctx.putImageData(img, 0, 0);
  return canvas;
}
