// tensorserve dashboard: reads /dashboard/api/overview every POLL_MS and the public
// REST API; rates and percentiles come from the change between two reads of the
// server's cumulative counters, kept here for WINDOW_MS (no server-side store).
"use strict";

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const samples = []; // {t, metrics} oldest first
let overview = null;
let firstBatches = null;
const signatures = {}; // model -> signature_def map
let selectedModel = "";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), r = s % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + r + "s";
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.status + " " + url);
  return body;
}

// ---- polling ----------------------------------------------------------------------------
async function poll() {
  try {
    overview = await getJSON("/dashboard/api/overview");
    const now = overview.metrics.time;
    samples.push({ t: now, metrics: overview.metrics });
    while (samples.length > 2 && now - samples[0].t > WINDOW_MS / 1000) samples.shift();
    if (firstBatches === null) firstBatches = overview.metrics.processed_batch_sizes;
    render();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    $("ready").textContent = "unreachable";
    $("ready").className = "pill bad";
    $("updated").textContent = String(error.message || error);
  }
  setTimeout(poll, POLL_MS);
}

function render() {
  renderServer();
  renderModels();
  renderCharts();
  renderBatching();
  renderModelChoices();
}

// ---- server panel -----------------------------------------------------------------------
function renderServer() {
  const s = overview.server;
  const ready = overview.models.every((m) => m.versions.some((v) => v.state === "AVAILABLE"));
  $("ready").textContent = ready ? "ready" : "not ready";
  $("ready").className = "pill " + (ready ? "ok" : "bad");
  const last = s.last_config;
  const facts = [
    ["Version", s.name + " " + s.version + " (TensorFlow " + s.tensorflow_version + ")"],
    ["Uptime", duration(s.now - s.started_at) + " (since " + when(s.started_at) + ")"],
    ["Processes", s.num_workers > 1
      ? s.num_workers + " protocol workers + model process " + s.pid + " (this page: worker " + overview.rest.pid + ")"
      : "one process (" + s.pid + ")"],
    ["Config file", s.model_config_file || "none (--model_name / --model_base_path)"],
    ["Config polling", s.model_config_file_poll_wait_seconds > 0
      ? "every " + s.model_config_file_poll_wait_seconds + " s" : "off"],
    ["Last model list applied", last
      ? when(last.time) + ": " + last.models + " model(s)" + (last.error ? ", error: " + last.error : "")
      : "never"],
    ["Batching", s.batching ? "on" : "off"],
    ["Prometheus", overview.rest.metrics_path || "off (--monitoring_config_file)"],
    ["Authentication", overview.rest.auth ? "bearer token" : "none"],
  ];
  $("server").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  const rows = Object.entries(s.flags).map(([k, v]) =>
    el("tr", {}, el("td", {}, "--" + k), el("td", {}, JSON.stringify(v))));
  $("flags").tBodies[0].replaceChildren(...rows);
}

// ---- models table -----------------------------------------------------------------------
function policyText(policy) {
  if (policy.kind === "all") return "all";
  if (policy.kind === "specific") return "specific: " + policy.versions.join(", ");
  return "latest " + policy.num_versions;
}

function renderModels() {
  const rows = overview.models.map((m) => {
    const versions = el("div", { class: "versions" }, ...m.versions.map((v) =>
      el("span", {
        class: "pill state-" + v.state + (v.error_message ? " failed" : ""),
        title: v.state + " since " + when(v.since) + (v.error_message ? "\n" + v.error_message : ""),
        "data-version": v.version, "data-state": v.state,
      }, v.version + " " + v.state)));
    if (!m.versions.length) versions.append(el("span", { class: "muted" }, "no version found yet"));
    const labels = Object.entries(m.labels).map(([k, v]) => k + " → " + v).join(", ");
    const error = m.last_error
      ? "version " + m.last_error.version + " at " + when(m.last_error.time) + ": " + m.last_error.message
      : "";
    return el("tr", { "data-model": m.name },
      el("td", {}, el("strong", {}, m.name)), el("td", {}, versions), el("td", {}, labels),
      el("td", {}, policyText(m.policy)), el("td", { class: "path" }, m.base_path),
      el("td", { class: "error" }, error));
  });
  $("models").tBodies[0].replaceChildren(...rows);
}

// ---- charts -----------------------------------------------------------------------------
function total(requests) {
  return Object.values(requests || {}).reduce((a, b) => a + b, 0);
}

function percentile(bounds, counts, q) {
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= q * n && counts[i] > 0) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const upper = i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
      return lower + (upper - lower) * ((q * n - seen) / counts[i]);
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

function series(name) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = b.t - a.t;
    const ma = a.metrics.models[name] || {}, mb = b.metrics.models[name] || {};
    if (!(dt > 0) || !mb.requests) continue;
    const requests = total(mb.requests) - total(ma.requests);
    const errors = requests - ((mb.requests.OK || 0) - ((ma.requests || {}).OK || 0));
    const counts = (mb.latency_counts || []).map((c, j) => c - ((ma.latency_counts || [])[j] || 0));
    const bounds = b.metrics.latency_bounds_us;
    out.push({
      t: b.t, rate: requests / dt, errorRate: errors / dt,
      p50: percentile(bounds, counts, 0.5), p99: percentile(bounds, counts, 0.99),
    });
  }
  return out;
}

function spark(points, ...keys) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 34");
  svg.setAttribute("preserveAspectRatio", "none");
  const values = points.flatMap((p) => keys.map((k) => p[k])).filter((v) => v !== null);
  const max = Math.max(1e-9, ...values);
  keys.forEach((key, index) => {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    const n = Math.max(1, points.length - 1);
    line.setAttribute("points", points.map((p, i) =>
      (i / n * 100).toFixed(2) + "," + (32 - (p[key] || 0) / max * 30).toFixed(2)).join(" "));
    if (index > 0) line.setAttribute("class", key === "errorRate" ? "errors" : "second");
    svg.append(line);
  });
  return svg;
}

function ms(us) {
  return us === null || us === undefined ? "–" : (us / 1000).toFixed(us < 10000 ? 2 : 0) + " ms";
}

function renderCharts() {
  const cards = overview.models.map((m) => {
    const points = series(m.name);
    const last = points[points.length - 1] || {};
    const current = overview.metrics.models[m.name] || {};
    return el("div", { class: "card", "data-model": m.name },
      el("h3", {}, m.name, el("span", { class: "muted" },
        "  " + total(current.requests) + " requests, " + (current.in_flight || 0) + " in flight" +
        (current.batch_queue_depth ? ", " + current.batch_queue_depth + " queued for batching" : ""))),
      el("div", { class: "chart" },
        el("span", { class: "value" }, (last.rate || 0).toFixed(1) + " req/s"), spark(points, "rate"),
        el("span", { class: "value", title: "failed requests per second" },
          (last.errorRate || 0).toFixed(1) + " err/s"), spark(points, "errorRate", "errorRate"),
        el("span", { class: "value", title: "p50 (blue) and p99 (orange) latency of successful requests" },
          ms(last.p50) + " / " + ms(last.p99)), spark(points, "p50", "p99")));
  });
  $("charts").replaceChildren(...cards);
}

function renderBatching() {
  const m = overview.metrics;
  const counts = m.processed_batch_sizes.map((c, i) => c - ((firstBatches || [])[i] || 0));
  const box = $("batching");
  box.hidden = !overview.server.batching;
  if (box.hidden) return;
  const max = Math.max(1, ...counts);
  const labels = m.batch_size_bounds.map((b, i) => (i === 0 ? "<" : "") + b).concat(["more"]);
  const used = counts.map((c, i) => [c, labels[i]]).filter(([c], i) => c > 0 || i < 8);
  $("batch-chart").replaceChildren(
    el("div", { class: "bars" }, ...used.map(([c, l]) =>
      el("div", { style: "height:" + (c / max * 100) + "%", title: l + ": " + c + " batches" }))),
    el("div", { class: "bars-labels" }, ...used.map(([, l]) => el("span", {}, l))));
}

// ---- signatures and try it --------------------------------------------------------------
function renderModelChoices() {
  const select = $("try-model");
  const names = overview.models.map((m) => m.name);
  const current = Array.from(select.options).map((o) => o.value);
  if (names.join("\n") !== current.join("\n")) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(selectedModel)) select.value = selectedModel;
  }
  if (select.value && (select.value !== selectedModel || !signatures[select.value])) chooseModel();
}

async function chooseModel() {
  selectedModel = $("try-model").value;
  const name = selectedModel;
  try {
    const metadata = await getJSON("/v1/models/" + encodeURIComponent(name) + "/metadata");
    signatures[name] = metadata.metadata.signature_def.signature_def;
  } catch (error) {
    signatures[name] = null;
    $("method").textContent = "Metadata unavailable: " + error.message;
    return;
  }
  if (name !== selectedModel) return;
  const keys = Object.keys(signatures[name]).filter((k) => k !== "__saved_model_init_op").sort();
  const select = $("try-signature");
  select.replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
  if (keys.includes("serving_default")) select.value = "serving_default";
  chooseSignature();
}

function dims(info) {
  const shape = info.tensor_shape || {};
  if (shape.unknown_rank) return null;
  return (shape.dim || []).map((d) => Number(d.size));
}

function kindOf(signature) {
  const method = signature.method_name || "";
  if (method.endsWith("/classify")) return "classify";
  if (method.endsWith("/regress")) return "regress";
  return "predict";
}

function zeros(shape, dtype) {
  const leaf = dtype === "DT_STRING" ? "" : dtype === "DT_BOOL" ? false : 0;
  const build = (d) => (d >= shape.length ? leaf : Array.from({ length: Math.max(1, shape[d]) }, () => build(d + 1)));
  return build(0);
}

function exampleBody(name, signature) {
  const kind = kindOf(signature);
  if (kind !== "predict") {
    return { signature_name: name, examples: [{ x: 1.0 }] };
  }
  const inputs = Object.entries(signature.inputs || {});
  const instance = {};
  for (const [alias, info] of inputs) {
    const shape = dims(info) || [1];
    instance[alias] = zeros(shape.slice(1), info.dtype); // first dimension: the batch
  }
  const row = inputs.length === 1 ? instance[inputs[0][0]] : instance;
  return { signature_name: name, instances: [row] };
}

function chooseSignature() {
  const name = $("try-signature").value;
  const signature = (signatures[selectedModel] || {})[name];
  if (!signature) return;
  const rows = [];
  for (const kind of ["inputs", "outputs"]) {
    for (const [alias, info] of Object.entries(signature[kind] || {})) {
      const shape = dims(info);
      rows.push(el("tr", {}, el("td", {}, kind.slice(0, -1)), el("td", {}, alias), el("td", {}, info.name),
        el("td", {}, info.dtype), el("td", {}, shape === null ? "unknown rank" : "(" + shape.join(", ") + ")")));
    }
  }
  $("signature").tBodies[0].replaceChildren(...rows);
  const kind = kindOf(signature);
  $("method").textContent = "Method " + (signature.method_name || "(none)") + ": the form sends :" + kind +
    (kind === "predict" ? "" : " (tf.Example features; replace x with the model's feature names)");
  $("try-body").value = JSON.stringify(exampleBody(name, signature), null, 1);
  snippets();
}

function targetPath() {
  const version = $("try-version").value.trim();
  const signature = (signatures[selectedModel] || {})[$("try-signature").value] || {};
  return "/v1/models/" + encodeURIComponent(selectedModel) +
    (version ? "/versions/" + encodeURIComponent(version) : "") + ":" + kindOf(signature);
}

function pyLiteral(value) {
  return JSON.stringify(value).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
}

const TF_DTYPES = {
  DT_FLOAT: "float32", DT_DOUBLE: "float64", DT_HALF: "float16", DT_BFLOAT16: "bfloat16",
  DT_INT8: "int8", DT_INT16: "int16", DT_INT32: "int32", DT_INT64: "int64", DT_UINT8: "uint8",
  DT_UINT16: "uint16", DT_UINT32: "uint32", DT_UINT64: "uint64", DT_BOOL: "bool", DT_STRING: "string",
};

function grpcSnippet(body, kind, version, auth) {
  const port = overview.server.flags.port;
  const host = location.hostname + ":" + port;
  const meta = auth ? ", metadata=[(\"authorization\", \"Bearer \" + TOKEN)]" : "";
  const spec = "request.model_spec.name = " + pyLiteral(selectedModel) + "\n" +
    (version ? "request.model_spec.version.value = " + Number(version) + "\n" : "") +
    "request.model_spec.signature_name = " + pyLiteral(body.signature_name || "serving_default") + "\n";
  if (kind === "predict") {
    const instances = body.instances || [];
    const first = instances[0];
    const declared = ((signatures[selectedModel] || {})[body.signature_name || "serving_default"] || {}).inputs || {};
    const inputs = first !== null && typeof first === "object" && !Array.isArray(first)
      ? Object.keys(first).map((k) => [k, instances.map((r) => r[k])])
      : [[Object.keys(declared)[0] || "x", instances]];
    const dtype = (k) => (TF_DTYPES[(declared[k] || {}).dtype] ? ", dtype=tf." + TF_DTYPES[declared[k].dtype] : "");
    return "import grpc\nimport tensorflow as tf\n" +
      "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc\n\n" +
      "stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(" + pyLiteral(host) + "))\n" +
      "request = predict_pb2.PredictRequest()\n" + spec +
      inputs.map(([k, v]) => "request.inputs[" + pyLiteral(k) + "].CopyFrom(tf.make_tensor_proto(" + pyLiteral(v) + dtype(k) + "))\n").join("") +
      "print(stub.Predict(request, timeout=10" + meta + "))\n";
  }
  const module = kind === "classify" ? "classification_pb2" : "regression_pb2";
  const message = kind === "classify" ? "ClassificationRequest" : "RegressionRequest";
  const lines = (body.examples || []).map((example) => "example = request.input.example_list.examples.add()\n" +
    Object.entries(example).map(([k, v]) => {
      const list = Array.isArray(v) ? v : [v];
      const field = typeof list[0] === "string" ? "bytes_list" : Number.isInteger(list[0]) ? "int64_list" : "float_list";
      const values = field === "bytes_list" ? "[s.encode() for s in " + pyLiteral(list) + "]" : pyLiteral(list);
      return "example.features.feature[" + pyLiteral(k) + "]." + field + ".value.extend(" + values + ")\n";
    }).join(""));
  return "import grpc\nfrom tensorflow_serving.apis import " + module + ", prediction_service_pb2_grpc\n\n" +
    "stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(" + pyLiteral(host) + "))\n" +
    "request = " + module + "." + message + "()\n" + spec + lines.join("") +
    "print(stub." + (kind === "classify" ? "Classify" : "Regress") + "(request, timeout=10" + meta + "))\n";
}

function snippets() {
  if (!overview || !selectedModel) return;
  let body;
  try { body = JSON.parse($("try-body").value); } catch (error) { return; }
  const url = location.origin + targetPath();
  const auth = overview.rest.auth;
  const compact = JSON.stringify(body);
  $("snippet-curl").textContent = "curl -X POST " + url + (auth ? " -H \"Authorization: Bearer $TOKEN\"" : "") +
    " \\\n  -H 'Content-Type: application/json' -d '" + compact.replace(/'/g, "'\\''") + "'";
  $("snippet-requests").textContent = "import requests\n\nresponse = requests.post(\n    " + pyLiteral(url) +
    ",\n    json=" + pyLiteral(body) + "," + (auth ? "\n    headers={\"Authorization\": \"Bearer \" + TOKEN}," : "") +
    "\n    timeout=10,\n)\nprint(response.status_code, response.json())\n";
  const signature = (signatures[selectedModel] || {})[$("try-signature").value] || {};
  $("snippet-grpc").textContent = grpcSnippet(body, kindOf(signature), $("try-version").value.trim(), auth);
}

async function send() {
  const status = $("try-status"), out = $("try-response");
  let body;
  try {
    body = JSON.parse($("try-body").value);
  } catch (error) {
    status.textContent = "The body is not valid JSON: " + error.message;
    return;
  }
  status.textContent = "sending…";
  const start = performance.now();
  try {
    const response = await fetch(targetPath(), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 1); } catch (error) { /* not JSON: as is */ }
    out.textContent = shown;
    out.dataset.status = String(response.status);
    status.textContent = response.status + " " + response.statusText + " in " + (performance.now() - start).toFixed(1) + " ms";
  } catch (error) {
    status.textContent = "Request failed: " + error.message;
  }
}

$("try-model").addEventListener("change", chooseModel);
$("try-signature").addEventListener("change", chooseSignature);
$("try-body").addEventListener("input", snippets);
$("try-version").addEventListener("input", snippets);
$("try-send").addEventListener("click", send);
poll();
