// The local API page: lists the endpoints of /openapi.json and tries POST /api/predict. No external files.
"use strict";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
fetch("/openapi.json").then((r) => r.json()).then((spec) => {
  const rows = [];
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map((p) => `${esc(p.name)} (${esc(p.in)})`).join(", ");
      const body = op.requestBody ? Object.keys(op.requestBody.content || {}).join(", ") : "";
      rows.push(`<div class="endpoint"><h3><code>${method.toUpperCase()} ${esc(path)}</code></h3>` +
        `<p>${esc(op.summary || "")}</p>` + (params ? `<p>parameters: ${params}</p>` : "") +
        (body ? `<p>body: ${esc(body)}, field <code>file</code></p>` : "") + "</div>");
    }
  }
  document.getElementById("endpoints").innerHTML = rows.join("");
}).catch((e) => { document.getElementById("endpoints").textContent = "cannot read /openapi.json: " + e.message; });
document.getElementById("try").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = document.getElementById("try-file").files[0], out = document.getElementById("try-out");
  if (!f) { out.textContent = "Choose an image file first."; return; }
  const form = new FormData(); form.append("file", f, f.name);
  const res = await fetch("/api/predict", { method: "POST", body: form });
  out.textContent = `${res.status}: ` + JSON.stringify(await res.json(), null, 1);
});
