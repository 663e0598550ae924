// The training page: controls, curves, pictures and the drawing pad. The
// network trains in a Web Worker (train-worker.js); this script only sends
// it commands and draws what it reports.
//
// For tests and links, the URL may preset the form and start at once:
// /train?limit=5000&batch=10&epochs=1&start=1
"use strict";

const $ = (id) => document.getElementById(id);
const worker = new Worker("/train-worker.js");
const NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
const MAX_FILE = 128 << 20;  // bytes read from a dropped file, at most
let dropped = null;          // the four dropped files' bytes, by slot
let running = false;
const curve = { loss: [], acc: [], test: [] };  // [x in epochs, value]
let perEpoch = 1;
let digit = 0;

function setState(state) { document.body.dataset.state = state; }
function status(text) { $("status").textContent = text; }
function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
  console.error(text);
}

// The form, preset from the URL.
const params = new URLSearchParams(location.search);
for (const id of ["limit", "batch", "epochs", "lr", "momentum"]) {
  if (params.has(id)) $(id).value = params.get(id);
}
const number = (id) => Number($(id).value);

function start() {
  $("start").disabled = true;
  $("error").hidden = true;
  // A new network: new curves.
  curve.loss.length = curve.acc.length = curve.test.length = 0;
  $("epochs-done").replaceChildren();
  const msg = { cmd: "load", limit: number("limit"), batch: number("batch"), epochs: number("epochs") };
  if (dropped) msg.files = dropped;
  worker.postMessage(msg, dropped || []);
  dropped = null;
  sendSettings();
  worker.postMessage({ cmd: "run" });
  running = true;
  setState("training");
  $("pause").disabled = false;
}

function pause() {
  running = !running;
  worker.postMessage({ cmd: running ? "run" : "pause" });
  $("pause").textContent = running ? "Pause" : "Resume";
  setState(running ? "training" : "paused");
}

function sendSettings() {
  worker.postMessage({ cmd: "set", lr: number("lr"), momentum: number("momentum") });
}

function download() {
  worker.postMessage({ cmd: "weights" });
}

function saveWeights(bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = "seed-browser.safetensors";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  document.body.dataset.downloaded = String(bytes.length);
}

// Dropped files: each of MNIST's four names (with or without .gz) once.
async function drop(files) {
  const slots = [null, null, null, null];
  for (const f of files) {
    const slot = NAMES.findIndex((n) => f.name === n || f.name === n + ".gz" || f.name.replace(/\./g, "-") === n);
    if (f.size > MAX_FILE) {
      showError(`${f.name}: ${f.size} bytes; MNIST's largest file is 47 MB (at most ${MAX_FILE} are read)`);
      return;
    }
    if (slot < 0) {
      showError(`${f.name}: not one of MNIST's files; drop ${NAMES.join(", ")} (each may be .gz)`);
      return;
    }
    slots[slot] = await f.arrayBuffer();
  }
  const missing = NAMES.filter((_, i) => !slots[i]);
  if (missing.length) {
    showError(`missing: ${missing.join(", ")}; drop all four files at once`);
    return;
  }
  dropped = slots;
  $("error").hidden = true;
  $("dropped").textContent = "Your files: " + files.map((f) => f.name).join(", ") + ". Press Start.";
}

$("files").onchange = (e) => drop([...e.target.files]);
const dropZone = document.body;
dropZone.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
dropZone.addEventListener("dragleave", () => $("drop").classList.remove("over"));
dropZone.addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  drop([...e.dataTransfer.files]);
});

const handlers = {
  ready() {
    status("ready: press Start");
    setState("ready");
    $("start").disabled = false;
    if (params.get("start") === "1") start();
  },
  status(m) { status(m.text); },
  loaded(m) {
    perEpoch = m.perEpoch;
    status(`training on ${m.trainLen} images, ${m.perEpoch} batches an epoch`);
    $("download").disabled = false;
  },
  progress(m) {
    const x = m.epoch + m.batch / m.perEpoch;
    curve.loss.push([x, m.loss]);
    curve.acc.push([x, m.accuracy]);
    $("epoch").textContent = String(m.epoch + 1);
    $("batch-at").textContent = `${m.batch} / ${m.perEpoch}`;
    $("speed").textContent = Math.round(m.perSecond).toLocaleString("en");
    $("seconds").textContent = m.seconds.toFixed(1) + " s";
    $("loss").textContent = m.loss.toFixed(4);
    $("train-acc").textContent = (100 * m.accuracy).toFixed(1) + "%";
    drawCurves();
    predictPad();
  },
  epoch(m) {
    const percent = (100 * m.accuracy).toFixed(2) + "%";
    curve.test.push([m.epoch, m.accuracy]);
    $("test-acc").textContent = percent;
    const li = document.createElement("li");
    li.textContent = `epoch ${m.epoch}: test accuracy ${percent}, test loss ${m.loss.toFixed(4)} (${m.count} images)`;
    $("epochs-done").append(li);
    document.body.dataset.testAccuracy = m.accuracy.toFixed(4);
    drawCurves();
  },
  done() {
    running = false;
    status("done: download the weights, or start again");
    $("pause").disabled = true;
    $("start").disabled = false;
    setState("done");
  },
  paused() { status("paused: settings apply from the next batch"); },
  set(m) { document.body.dataset.lr = m.lr; },
  pictures(m) {
    drawFilters($("filters"), m.filters);
    drawMaps($("maps"), m.maps, m.digit);
  },
  prediction(m) { showPrediction(m.probabilities); },
  weights(m) { saveWeights(m.bytes); },
  error(m) {
    running = false;
    showError(m.text);
    status("stopped");
    setState("error");
    $("start").disabled = m.cmd === "module";
    $("pause").disabled = true;
  },
};
worker.onmessage = (e) => handlers[e.data.type](e.data);
worker.onerror = (e) => handlers.error({ text: "the worker failed: " + e.message });

$("start").onclick = start;
$("pause").onclick = pause;
$("download").onclick = download;
$("lr").onchange = sendSettings;
$("momentum").onchange = sendSettings;
$("next-digit").onclick = () => {
  digit = (digit + 1) % 10000;
  $("digit-index").textContent = String(digit);
  worker.postMessage({ cmd: "digit", index: digit });
};

// Curves: loss on its own axes; accuracy (training batches, test epochs) on 0..1.
function drawCurves() {
  const xmax = Math.max(1, ...curve.loss.map((p) => Math.ceil(p[0])));
  const lmax = Math.max(0.1, ...curve.loss.map((p) => Math.min(p[1], 5)));
  plot($("loss-curve"), "training loss", xmax, lmax, [[curve.loss, "#2563eb", false]]);
  plot($("acc-curve"), "accuracy", xmax, 1,
       [[curve.acc, "#2563eb", false], [curve.test, "#dc2626", true]]);
}

function plot(canvas, title, xmax, ymax, series) {
  const g = canvas.getContext("2d");
  const [w, h, left, bottom] = [canvas.width, canvas.height, 44, 22];
  g.fillStyle = "#fff";
  g.fillRect(0, 0, w, h);
  g.strokeStyle = "#9ca3af";
  g.strokeRect(left, 8, w - left - 8, h - bottom - 8);
  g.fillStyle = "#374151";
  g.font = "12px sans-serif";
  g.fillText(title, left + 6, 22);
  g.fillText(ymax.toFixed(ymax < 1.5 ? 1 : 2), 4, 16);
  g.fillText("0", 30, h - bottom);
  g.fillText("epoch " + xmax, w - 60, h - 6);
  const at = (p) => [left + (w - left - 8) * p[0] / xmax, h - bottom - (h - bottom - 8) * Math.min(p[1], ymax) / ymax];
  for (const [points, color, dots] of series) {
    g.strokeStyle = g.fillStyle = color;
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(...at(p)) : g.moveTo(...at(p))));
    if (!dots) g.stroke();
    if (dots) points.forEach((p) => { g.beginPath(); g.arc(...at(p), 4, 0, 7); g.fill(); });
  }
}

// A w x h picture of `values`, each made a grey level 0..255 by `map`, drawn
// at (x0, y0), `size` pixels on its longer side.
function greyImage(g, values, w, h, x0, y0, size, map) {
  const img = g.createImageData(w, h);
  values.forEach((v, i) => {
    const c = Math.max(0, Math.min(255, Math.round(map(v))));
    img.data.set([c, c, c, 255], 4 * i);
  });
  // Drawn at 1:1 on a scratch canvas, then scaled up without smoothing.
  const scratch = new OffscreenCanvas(w, h);
  scratch.getContext("2d").putImageData(img, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, x0, y0, size * w / Math.max(w, h), size * h / Math.max(w, h));
}

function drawFilters(canvas, f) {
  const [out, inn, kh, kw] = f.shape;
  const n = out * inn;
  const cell = Math.floor(canvas.width / n);
  canvas.height = cell;
  const g = canvas.getContext("2d");
  const scale = Math.max(...f.values.map(Math.abs)) || 1;
  for (let k = 0; k < n; k++) {
    const values = f.values.slice(k * kh * kw, (k + 1) * kh * kw);
    greyImage(g, values, kw, kh, k * cell + 2, 2, cell - 4, (v) => 128 + 127 * v / scale);
  }
}

function drawMaps(canvas, maps, index) {
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  const cell = Math.floor(canvas.width / 16);
  maps.forEach((m, row) => {
    const [c, h, w] = m.shape;
    for (let k = 0; k < c; k++) {
      const values = m.values.slice(k * h * w, (k + 1) * h * w);
      let lo = Infinity, hi = -Infinity;
      for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const span = hi - lo || 1;
      const size = row === 0 ? 2 * cell : cell;
      greyImage(g, values, w, h, k * size + 1, row * 2 * cell + 1, size - 2, (v) => 255 * (v - lo) / span);
    }
  });
  document.body.dataset.mapsOf = String(index);
}

// The drawing pad. Its grey pixels go to the module at the pad's size, as
// the / page sends them to /api/predict: the module makes them ready as
// `cnn predict` and `cnn serve` do (trainer::prepare), so that all three
// read a drawing the same way.
const pad = $("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });
let penAt = null;
let inked = false;
function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  $("guess").textContent = "?";
  $("bars").replaceChildren();
}
function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
function penTo(p) {
  Object.assign(pen, { strokeStyle: "#fff", lineWidth: 20, lineCap: "round", lineJoin: "round" });
  pen.beginPath();
  pen.moveTo(...penAt);
  pen.lineTo(...p);
  pen.stroke();
  penAt = p;
}
pad.addEventListener("pointerdown", (e) => {
  pad.setPointerCapture(e.pointerId);
  penAt = padPoint(e);
  penTo(penAt);
});
pad.addEventListener("pointermove", (e) => { if (penAt) penTo(padPoint(e)); });
pad.addEventListener("pointerup", () => { penAt = null; inked = true; predictPad(); });
$("clear").onclick = clearPad;
clearPad();

function predictPad() {
  if (!inked || !document.body.dataset.state.match(/training|paused|done/)) return;
  const rgba = pen.getImageData(0, 0, pad.width, pad.height).data;
  // White ink on black: the red channel is the grey level.
  const pixels = rgba.filter((_, i) => i % 4 === 0);
  worker.postMessage({ cmd: "predict", pixels, width: pad.width, height: pad.height }, [pixels.buffer]);
}

function showPrediction(p) {
  const best = p.indexOf(Math.max(...p));
  $("guess").textContent = String(best);
  const rows = [];
  p.forEach((v, k) => {
    const bar = document.createElement("div");
    bar.className = k === best ? "bar top" : "bar";
    bar.style.width = (100 * v).toFixed(1) + "%";
    const label = document.createElement("span");
    label.textContent = String(k);
    const value = document.createElement("span");
    value.textContent = (100 * v).toFixed(1) + "%";
    rows.push(label, bar, value);
  });
  $("bars").replaceChildren(...rows);
}
