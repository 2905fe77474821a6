// convnp playground front end: plain JS, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
const draw = $("draw"), ctx = draw.getContext("2d");
let drawing = false, last = null, pending = null, convStep = 0, convData = null, convRequest = 0;

function clearCanvas() {
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, draw.width, draw.height);
}
clearCanvas();

function pointerPos(e) {
  const r = draw.getBoundingClientRect();
  return { x: (e.clientX - r.left) * draw.width / r.width, y: (e.clientY - r.top) * draw.height / r.height };
}
draw.addEventListener("pointerdown", (e) => { $("source").textContent = "Your drawing on the canvas."; drawing = true; last = pointerPos(e); draw.setPointerCapture(e.pointerId); stroke(e); });
draw.addEventListener("pointermove", (e) => { if (drawing) stroke(e); });
["pointerup", "pointercancel", "pointerleave"].forEach((t) => draw.addEventListener(t, () => { drawing = false; last = null; }));
function stroke(e) {
  const p = pointerPos(e);
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
  last = p; schedule();
}
function schedule() {  // update as the user draws, at most every 150 ms
  if (pending) return;
  pending = setTimeout(() => { pending = null; draw.toBlob((b) => analyse(b, "canvas.png")); }, 150);
}
function clearResults() {  // nothing on screen may describe an input that is no longer there
  $("prediction").textContent = "–"; $("bars").innerHTML = ""; $("features").innerHTML = "";
  ["preview", "saliency", "gradcam"].forEach((id) => { const c = $(id); c.getContext("2d").clearRect(0, 0, c.width, c.height); });
}
$("clear").onclick = () => { clearCanvas(); clearResults(); $("message").textContent = "";
  $("source").textContent = "Draw with the mouse or a finger."; $("upload").value = ""; };
$("upload").onchange = (e) => { const f = e.target.files[0]; if (f) upload(f); };

async function upload(file) {  // the canvas shows the uploaded picture, so canvas and result agree
  clearResults(); $("message").textContent = "";
  $("source").textContent = `Uploaded: ${file.name}`;
  try {
    const bitmap = await createImageBitmap(file);
    const s = Math.min(draw.width / bitmap.width, draw.height / bitmap.height);
    const w = bitmap.width * s, h = bitmap.height * s;
    clearCanvas(); ctx.drawImage(bitmap, (draw.width - w) / 2, (draw.height - h) / 2, w, h);
  } catch (err) {  // the browser cannot show it: nothing of an earlier drawing stays on the canvas
    clearCanvas();
  }
  analyse(file, file.name);
}

function sentence(text) {  // one short sentence for the message line
  const t = String(text || "").trim();
  return t ? t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".") : "";
}

async function post(path, blob, name) {
  const form = new FormData(); form.append("file", blob, name);
  let res;
  try { res = await fetch(path, { method: "POST", body: form }); }
  catch (err) { throw new Error("cannot reach the playground server"); }
  let body = null;
  try { body = await res.json(); } catch (err) { body = null; }
  if (!res.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `the server answered ${res.status}`;
    throw new Error(detail);
  }
  return body;
}

let analysis = 0;
async function analyse(blob, name) {
  const mine = ++analysis;  // only the newest input may update the page
  try {
    const out = await post("/api/features", blob, name);
    if (mine !== analysis) return;
    $("message").textContent = "";
    showPrediction(out); showFeatures(out.layers); paint($("preview"), out.input);
    const sal = await post("/api/saliency", blob, name);
    if (mine !== analysis) return;
    paint($("saliency"), sal.saliency, "heat"); paint($("gradcam"), sal.grad_cam, "heat");
  } catch (err) {
    if (mine !== analysis) return;
    clearResults();
    $("message").textContent = sentence(err.message);
  }
}

function showPrediction(out) {
  $("prediction").textContent = out.class;
  $("bars").innerHTML = out.probabilities.map((p, i) =>
    `<div class="bar ${i === out.class ? "top" : ""}" data-digit="${i}"><span>${i}</span>` +
    `<span class="fill" style="width:${Math.max(1, p * 220)}px"></span><span>${(p * 100).toFixed(1)}%</span></div>`).join("");
}

function paint(canvas, map, palette) {  // map: 2-D array of values in [0, 1]
  const h = map.length, w = map[0].length, img = new ImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = map[y][x], i = 4 * (y * w + x);
    if (palette === "heat") { img.data[i] = 255 * Math.min(1, 2 * v); img.data[i + 1] = 255 * Math.max(0, 2 * v - 1); img.data[i + 2] = 0; }
    else { img.data[i] = img.data[i + 1] = img.data[i + 2] = 255 * v; }
    img.data[i + 3] = 255;
  }
  const tmp = document.createElement("canvas"); tmp.width = w; tmp.height = h;
  tmp.getContext("2d").putImageData(img, 0, 0);
  const c = canvas.getContext("2d"); c.imageSmoothingEnabled = false;
  c.clearRect(0, 0, canvas.width, canvas.height); c.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function smallCanvas(map, size) {
  const c = document.createElement("canvas"); c.width = size; c.height = size; paint(c, map); return c;
}

function showFeatures(layers) {
  const root = $("features"); root.innerHTML = "";
  for (const layer of layers) {
    const div = document.createElement("div"); div.className = "layer";
    div.innerHTML = `<h3>${layer.name} (${layer.type}) → (${layer.shape.join(", ")})</h3>`;
    const maps = document.createElement("div"); maps.className = "maps";
    layer.maps.forEach((m) => maps.appendChild(smallCanvas(m, 56)));
    div.appendChild(maps); root.appendChild(div);
  }
}

function gridColumns(n) {  // columns that divide n evenly (30 -> 10, 32 -> 8), so no row holds one lone filter
  for (const k of [10, 8, 6, 9, 12, 7, 5, 4]) if (n % k === 0 && n / k >= 2) return k;
  return Math.min(n, 8);
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  $("model-name").textContent = info.name;
  const esc = (v) => String(v).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const total = info.layers.reduce((a, l) => a + l.params, 0);
  $("layer-table").innerHTML = "<table class=\"layers\"><thead><tr><th>Layer</th><th>Type</th><th>Output shape</th>" +
    "<th>Params</th></tr></thead><tbody>" + info.layers.map((l) =>
      `<tr><td>${esc(l.name)}</td><td>${esc(l.type)}</td><td>(${l.output_shape.map((v) => v === null ? "N" : v).join(", ")})</td>` +
      `<td>${l.params.toLocaleString("en")}</td></tr>`).join("") +
    `</tbody><tfoot><tr><td colspan="3">Total</td><td>${total.toLocaleString("en")}</td></tr></tfoot></table>`;
  const grid = $("filters"); grid.innerHTML = "";
  grid.style.gridTemplateColumns = `repeat(${gridColumns(info.filters.length)}, max-content)`;
  info.filters.forEach((f) => grid.appendChild(smallCanvas(f, 40)));
}

function table(el, data, cls) {
  el.innerHTML = data.map((row, y) => "<tr>" + row.map((v, x) =>
    `<td data-y="${y}" data-x="${x}" class="${cls ? cls(y, x) : ""}">${Number(v).toFixed(Math.abs(v) < 10 ? 2 : 0).replace(/\.00$/, "")}</td>`).join("") + "</tr>").join("");
}

async function loadConvolution() {
  const q = new URLSearchParams({ kernel: $("kernel").value, stride: $("stride").value, padding: $("padding").value });
  const mine = ++convRequest;  // only the newest request may update the panel
  const res = await fetch("/api/convolution?" + q);
  const body = await res.json();
  if (mine !== convRequest) return;
  if (!res.ok) { $("formula").textContent = body.detail; return; }
  convData = body; convStep = 0; renderConvolution();
}
function renderConvolution() {
  const d = convData, p = d.padding, k = d.kernel.length;
  const n = d.input.length + 2 * p;
  const padded = Array.from({ length: n }, (_, y) => Array.from({ length: n }, (_, x) =>
    (y < p || x < p || y >= n - p || x >= n - p) ? 0 : d.input[y - p][x - p]));
  const ow = d.output[0].length, oy = Math.floor(convStep / ow) % d.output.length, ox = convStep % ow;
  table($("conv-input"), padded, (y, x) => (y >= oy * d.stride && y < oy * d.stride + k && x >= ox * d.stride && x < ox * d.stride + k) ? "win" : "");
  table($("conv-kernel"), d.kernel);
  table($("conv-output"), d.output, (y, x) => (y === oy && x === ox) ? "out-active" : "");
  $("formula").textContent = d.formula;
}
$("step").onclick = () => { if (convData) { convStep = (convStep + 1) % (convData.output.length * convData.output[0].length); renderConvolution(); } };
["kernel", "stride", "padding"].forEach((id) => $(id).addEventListener("change", loadConvolution));

loadInfo().catch((e) => { $("message").textContent = "cannot load the model: " + e.message; });
loadConvolution();
