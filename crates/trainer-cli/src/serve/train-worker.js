// The training page's Web Worker: loads the WebAssembly module (this
// project's crates, built by `cargo xtask web`) and trains in slices of a
// few batches, posting progress between them, so that pause, new settings
// and the drawing pad are heard between batches. The page stays responsive
// because all of this runs here, off its thread.
"use strict";

const FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
const SLICE_MS = 150;      // train this long between two progress reports
const PICTURES_MS = 1000;  // filters and feature maps at most this often

let w = null;              // the module's exports
let running = false;
let epochs = 1;            // epochs to train before stopping
let shownDigit = 0;        // the test image whose feature maps are shown
let lastPictures = 0;
let trainMs = 0, trainImages = 0;
let loaded = false;        // a network to look at

const post = (msg, transfer) => self.postMessage(msg, transfer || []);

// The last error's message, from the module's memory.
function error() {
  const bytes = new Uint8Array(w.memory.buffer, w.error_ptr(), w.error_len());
  return new TextDecoder().decode(bytes);
}
// Calls a function of the module; a failure (-1) throws its message.
function call(name, ...args) {
  const r = w[name](...args);
  if (r < 0) throw new Error(error());
  return r;
}
// The module's memory may grow with any call: views are made afresh.
const stats = () => Array.from(new Float64Array(w.memory.buffer, w.stats(), 8));
const outF32 = (n) => Float32Array.from(new Float32Array(w.memory.buffer, w.out_f32(), n));
function toInbox(bytes) {
  const at = w.inbox(bytes.length);
  new Uint8Array(w.memory.buffer, at, bytes.length).set(bytes);
}

async function loadModule() {
  const r = await fetch("/train/trainer_web.wasm");
  if (!r.ok) throw new Error((await r.text()).trim());
  const { instance } = await WebAssembly.instantiate(await r.arrayBuffer(), {});
  w = instance.exports;
}

// The four files: those dropped on the page, else the server's --data.
async function serverFiles() {
  return Promise.all(FILES.map(async (name) => {
    const r = await fetch("/api/mnist/" + name);
    if (!r.ok) throw new Error((await r.text()).trim());
    return new Uint8Array(await r.arrayBuffer());
  }));
}

async function load(msg) {
  post({ type: "status", text: "loading the data" });
  loaded = false;
  const files = msg.files ? msg.files.map((b) => new Uint8Array(b)) : await serverFiles();
  files.forEach((bytes, slot) => { toInbox(bytes); call("set_file", slot); });
  call("start", msg.limit, msg.batch);
  const [trainLen, perEpoch] = stats();
  epochs = msg.epochs;
  trainMs = 0; trainImages = 0;
  loaded = true;
  post({ type: "loaded", trainLen, perEpoch });
  pictures();
}

// The first layer's filters and the shown digit's feature maps, as they are now.
function pictures() {
  lastPictures = performance.now();
  const n = call("filters");
  const filters = { values: outF32(n), shape: stats().slice(0, 4) };
  const maps = [];
  for (let k = 0; k < 2; k++) {
    const m = call("maps", shownDigit, k);
    maps.push({ values: outF32(m), shape: stats().slice(0, 3) });
  }
  post({ type: "pictures", filters, maps, digit: shownDigit });
}

// One slice of training, then the next one after any message waiting.
function slice() {
  if (!running) return;
  try {
    const start = performance.now();
    let batches = 0, images = 0, loss = 0, correct = 0, s = null;
    while (performance.now() - start < SLICE_MS) {
      const done = call("train", 1);
      if (done === 0) break;
      s = stats();
      batches += s[0]; images += s[1]; loss += s[2] * s[1]; correct += s[3];
    }
    trainMs += performance.now() - start;
    trainImages += images;
    if (s) {
      post({ type: "progress", epoch: s[4], batch: s[5], perEpoch: s[6], images,
             loss: loss / images, accuracy: correct / images,
             perSecond: trainImages / (trainMs / 1000), seconds: trainMs / 1000 });
    }
    if (performance.now() - lastPictures > PICTURES_MS) pictures();
    if (batches === 0) endOfEpoch();
  } catch (e) {
    running = false;
    post({ type: "error", text: String(e.message || e) });
    return;
  }
  setTimeout(slice, 0);
}

function endOfEpoch() {
  post({ type: "status", text: "testing on the test set" });
  call("evaluate");
  const [loss, accuracy, count] = stats();
  call("train", 0); // runs no batch; its stats say which epoch this is
  const epoch = stats()[4] + 1;
  pictures();
  post({ type: "epoch", epoch, loss, accuracy, count });
  if (epoch >= epochs) {
    running = false;
    post({ type: "done" });
  } else {
    call("next_epoch");
  }
}

const handlers = {
  async load(msg) { await load(msg); },
  run() { if (!running) { running = true; setTimeout(slice, 0); } },
  pause() { running = false; post({ type: "paused" }); },
  set(msg) {
    if (msg.lr !== undefined) call("set_lr", msg.lr);
    if (msg.momentum !== undefined) call("set_momentum", msg.momentum);
    post({ type: "set", lr: msg.lr, momentum: msg.momentum });
  },
  digit(msg) { shownDigit = msg.index; if (loaded) pictures(); },
  predict(msg) {
    toInbox(msg.pixels);
    call("predict", msg.width, msg.height);
    post({ type: "prediction", probabilities: outF32(10), id: msg.id });
  },
  weights() {
    const n = call("weights");
    const bytes = Uint8Array.from(new Uint8Array(w.memory.buffer, w.out_bytes(), n));
    post({ type: "weights", bytes }, [bytes.buffer]);
  },
};

// One message at a time, in order: loading the data takes a while, and the
// commands sent after it ("set", "run") must wait for it.
let queue = loadModule().then(() => post({ type: "ready" }));
queue.catch((err) => post({ type: "error", text: String(err.message || err), cmd: "module" }));
self.onmessage = (e) => {
  queue = queue.then(() => handlers[e.data.cmd](e.data)).catch((err) => {
    running = false;
    post({ type: "error", text: String(err.message || err), cmd: e.data.cmd });
  });
};
