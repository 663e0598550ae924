// `cnn serve`'s page: the drawing goes to the server as grey pixels, and the
// server's answer (see src/serve.rs) is drawn. No computation happens here.
//
// For automated checks, the page writes into <body>: data-state ("ready" once
// an answer is drawn and its images decoded, "error"), data-predicted and
// data-truth (class indices), data-maps (feature-map images) and
// data-images-ok ("true" when every image decoded with a non-zero size).
// Query parameters, for such checks: ?test=N shows test image N;
// ?strokes=x,y,x,y,...;x,y,... draws those strokes (canvas pixels, 0..280).
"use strict";

const pad = document.getElementById("pad");
// Read back after every stroke (getImageData): tell the browser so.
const ctx = pad.getContext("2d", { willReadFrequently: true });
const $ = (id) => document.getElementById(id);
let model = null;
let busy = false;       // a request is under way
let again = null;       // the request to send once it is answered
let mistake = -1;       // position in model.mistakes

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function startPen() {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 20;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

// Clear: a blank pad and no answer, as when the page opened.
function clearAll() {
  clearPad();
  $("class").textContent = "?";
  $("confidence").textContent = "";
  const input = $("input");
  input.hidden = true;
  input.removeAttribute("src");
  $("truth").textContent = "";
  $("bars").replaceChildren();
  $("notes").replaceChildren();
  $("layers").replaceChildren();
  $("error").hidden = true;
  document.body.dataset.state = "cleared";
}

// Drawing: one stroke from pointerdown to pointerup, sent when it ends.
let last = null;
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
function lineTo(p) {
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
}
pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  startPen();
  last = point(e);
  lineTo(last);
});
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const c of events.length ? events : [e]) lineTo(point(c));
});
function endStroke() {
  if (!last) return;
  last = null;
  sendDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function sendDrawing() {
  const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data;
  const pixels = new Array(pad.width * pad.height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[4 * i];
  ask({
    url: "/api/predict",
    options: {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ width: pad.width, height: pad.height, pixels }),
    },
  });
}

function showTest(index) {
  ask({ url: "/api/test/" + index, options: {} });
}

// One request at a time; while one is under way, only the latest waits.
async function ask(request) {
  if (busy) {
    again = request;
    return;
  }
  busy = true;
  try {
    const reply = await fetch(request.url, request.options);
    const text = await reply.text();
    if (!reply.ok) throw new Error(text.trim() || reply.statusText);
    await show(JSON.parse(text));
  } catch (err) {
    $("error").hidden = false;
    $("error").textContent = "The server could not answer: " + err.message;
    document.body.dataset.state = "error";
  }
  busy = false;
  if (again) {
    const next = again;
    again = null;
    ask(next);
  }
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function image(src, alt) {
  const img = el("img");
  img.src = src;
  img.alt = alt;
  return img;
}

// Draws one answer of the server, then says whether every image decoded.
async function show(r) {
  $("error").hidden = true;
  $("class").textContent = r.class_name;
  const p = r.probabilities[r.class];
  $("confidence").textContent = (100 * p).toFixed(1) + "% sure";
  $("input").src = r.input;
  $("input").hidden = false;
  const truth = $("truth");
  if (r.truth !== undefined) {
    const right = r.truth === r.class;
    truth.textContent = "Test image " + r.index + ", true label " + model.classes[r.truth] +
      (right ? ": right" : ": wrong");
    truth.className = right ? "right" : "wrong";
    drawInput(r.input);
  } else {
    truth.textContent = "";
  }
  const bars = $("bars");
  bars.replaceChildren();
  r.probabilities.forEach((q, c) => {
    bars.append(el("span", "", model.classes[c]));
    const track = el("div");
    const bar = el("div", c === r.class ? "bar top" : "bar");
    bar.style.width = (100 * q).toFixed(1) + "%";
    track.append(bar);
    bars.append(track, el("span", "", (100 * q).toFixed(1) + "%"));
  });
  $("notes").replaceChildren(...r.notes.map((n) => el("li", "", n)));
  const layers = $("layers");
  layers.replaceChildren();
  for (const layer of r.layers) {
    const card = el("section", "card");
    card.append(el("h2", "", layer.name + ": " + layer.maps.length + " maps " + layer.width + "\u00d7" + layer.height +
      ", numbered by channel, each scaled to its own range"));
    const maps = el("div", "maps");
    layer.maps.forEach((m, i) => {
      // Numbered by channel; each map is scaled to its own range.
      const fig = el("figure", "map");
      fig.append(image(m, layer.name + " map " + i), el("figcaption", "", String(i)));
      maps.append(fig);
    });
    card.append(maps);
    layers.append(card);
  }
  const mapImages = Array.from(layers.querySelectorAll("img"));
  const all = Array.from(document.images).filter((i) => !i.hidden && i.getAttribute("src"));
  const decoded = await Promise.all(all.map((i) => i.decode().then(() => i.naturalWidth > 0, () => false)));
  const body = document.body.dataset;
  body.predicted = String(r.class);
  body.truth = r.truth === undefined ? "" : String(r.truth);
  body.maps = String(mapImages.length);
  body.imagesOk = String(decoded.every((ok) => ok) && mapImages.length > 0);
  body.state = "ready";
}

// Test images are drawn on the pad too, so that one can draw over them.
function drawInput(src) {
  const img = new Image();
  img.onload = () => {
    clearPad();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, pad.width, pad.height);
  };
  img.src = src;
}

async function start() {
  clearPad();
  const reply = await fetch("/api/model");
  model = await reply.json();
  $("model").textContent = model.model + " (config " + model.config + ")" +
    (model.test_accuracy === null ? "" : ", " + (100 * model.test_accuracy).toFixed(2) + "% right on " + model.test_images + " test images");
  if (model.kernels) {
    $("kernels").src = model.kernels;
    $("kernels-caption").textContent = model.kernels_caption;
    $("kernels-card").hidden = false;
  }
  if (model.test_images > 0) {
    $("random").hidden = false;
    $("random").onclick = () => showTest(Math.floor(Math.random() * model.test_images));
  }
  if (model.mistakes.length > 0) {
    $("mistake").hidden = false;
    $("mistake").onclick = () => {
      mistake = (mistake + 1) % model.mistakes.length;
      $("mistake").textContent = "Next mistake (" + (mistake + 1) + " of " + model.mistakes.length + ")";
      showTest(model.mistakes[mistake]);
    };
  }
  $("clear").onclick = () => clearAll();
  const query = new URLSearchParams(location.search);
  if (query.has("test")) {
    showTest(Number(query.get("test")));
  } else if (query.has("strokes")) {
    startPen();
    for (const stroke of query.get("strokes").split(";")) {
      const xy = stroke.split(",").map(Number);
      last = [xy[0], xy[1]];
      for (let i = 0; i + 1 < xy.length; i += 2) lineTo([xy[i], xy[i + 1]]);
    }
    last = null;
    sendDrawing();
  } else {
    document.body.dataset.state = "ready";
  }
}

start().catch((err) => {
  $("error").hidden = false;
  $("error").textContent = "Could not load the model: " + err.message;
  document.body.dataset.state = "error";
});
