// gradspec book: loads the WebAssembly module (embedded in wasm.js as base64, so the page
// works from file:// with no server) and wires the page's controls to it. Every number shown
// is computed by the module, i.e. by the library's own Rust functions; this script only moves
// numbers between the page and the module, and draws them.
"use strict";
(function () {
  const errors = [];
  function report(msg) {
    errors.push(String(msg));
    const el = document.getElementById("js-errors");
    if (el) {
      el.hidden = false;
      el.className = "error";
      el.textContent = errors.join("\n");
    }
    document.body.dataset.jsErrors = String(errors.length);
  }
  window.addEventListener("error", (e) => report("error: " + e.message));
  window.addEventListener("unhandledrejection", (e) => report("unhandled rejection: " + e.reason));

  function bytesOf(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  let wasm = null;
  // Synchronous compile: the module is small, and the page is complete once `load` has run.
  function load() {
    const module = new WebAssembly.Module(bytesOf(window.GRADSPEC_WASM));
    wasm = new WebAssembly.Instance(module, {}).exports;
  }
  // The module's answer to the last call: JSON text at out_ptr/out_len.
  function answer(rc) {
    const text = new TextDecoder().decode(
      new Uint8Array(wasm.memory.buffer, wasm.out_ptr(), wasm.out_len()));
    const v = JSON.parse(text);
    if (rc !== 0) throw new Error(v.error);
    return v;
  }
  // Copies `bytes` into the module's memory for the duration of `f(ptr, len)`.
  function withBytes(bytes, f) {
    const p = wasm.buf_alloc(bytes.length);
    new Uint8Array(wasm.memory.buffer, p, bytes.length).set(bytes);
    try {
      return f(p, bytes.length);
    } finally {
      wasm.buf_free(p, bytes.length);
    }
  }

  const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d"];
  // A line chart of `series` ([{ys, color, label}]) on `canvas`, y from 0 to the largest value,
  // with axis titles (`xTitle`, `yTitle`) and 12-px labels; `mark` is an index to mark with a
  // dot on the first series. The canvas is drawn at the device's pixel ratio so its text stays
  // sharp at its CSS size.
  function chart(canvas, series, mark, xTitle, yTitle) {
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth || canvas.width, H = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(W * dpr)) { canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr); }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const L = 58, B = 36, T = 10, R = 10;
    g.clearRect(0, 0, W, H);
    let ymax = 0, n = 0;
    for (const s of series) {
      for (const y of s.ys) if (isFinite(y)) ymax = Math.max(ymax, y);
      n = Math.max(n, s.ys.length);
    }
    if (ymax <= 0) ymax = 1;
    const px = (i) => L + (W - L - R) * (n > 1 ? i / (n - 1) : 0);
    const py = (y) => T + (H - T - B) * (1 - y / ymax);
    g.strokeStyle = "#999"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(L, T); g.lineTo(L, H - B); g.lineTo(W - R, H - B); g.stroke();
    g.fillStyle = "#333"; g.font = "12px sans-serif";
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(ymax.toPrecision(3), L - 4, T + 2); g.fillText("0", L - 4, H - B);
    g.textAlign = "center"; g.textBaseline = "top";
    g.fillText("0", L, H - B + 3); g.fillText(String(n - 1), W - R - 8, H - B + 3);
    g.fillText(xTitle, (L + W - R) / 2, H - 15);
    g.save(); g.translate(13, (T + H - B) / 2); g.rotate(-Math.PI / 2);
    g.textBaseline = "middle"; g.fillText(yTitle, 0, 0); g.restore();
    g.textAlign = "left"; g.textBaseline = "alphabetic";
    series.forEach((s, k) => {
      g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
      s.ys.forEach((y, i) => (i ? g.lineTo(px(i), py(y)) : g.moveTo(px(i), py(y))));
      g.stroke();
      if (s.label) { g.fillStyle = s.color; g.fillText(s.label, W - R - 62, T + 12 + 14 * k); }
    });
    if (mark !== null && series.length) {
      g.fillStyle = "#b00020"; g.beginPath();
      g.arc(px(mark), py(series[0].ys[mark]), 3.5, 0, 2 * Math.PI); g.fill();
    }
  }

  const query = new URLSearchParams(location.search);

  function part1() {
    const sliders = Array.from(document.querySelectorAll("#controls input[type=range]"));
    const val = (n) => parseFloat(document.getElementById("s-" + n).value);
    const err = document.getElementById("bp-error");
    function update() {
      for (const s of sliders) document.getElementById("o-" + s.dataset.name).textContent = s.value;
      let v;
      try {
        v = answer(wasm.bp_numbers(val("i1"), val("i2"), val("t1"), val("t2"),
          val("w1"), val("w2"), val("w3"), val("w4"), val("w5"), val("w6"), val("w7"), val("w8"),
          val("lr"), val("iteration") | 0, 100));
      } catch (e) {
        err.textContent = e.message;
        return;
      }
      err.textContent = "";
      for (const pre of document.querySelectorAll("pre.live")) {
        const b = v.blocks[pre.dataset.label];
        pre.textContent = b === undefined ? "(no numbers for this label)" : b;
      }
      document.getElementById("e-total").textContent =
        "E_total at iteration " + v.iteration + ": " + v.e_total.toPrecision(9);
      chart(document.getElementById("loss"), [{ ys: v.loss, color: "#0b5cad" }], v.iteration,
        "iteration", "E_total");
      // The sidebar says what the settings are, and whether they are the spreadsheet's.
      const moved = sliders.filter((s) => parseFloat(s.value) !== parseFloat(s.dataset.start))
        .map((s) => (s.dataset.name === "lr" ? "η" : s.dataset.name));
      document.getElementById("settings").textContent =
        "Now: η = " + val("lr") + ", iteration " + (val("iteration") | 0) + (moved.length === 0
          ? " — the source spreadsheet's start."
          : "; moved from the spreadsheet's start: " + moved.join(", ") + ".");
      // The network figure: each weight on its edge, at the chosen iteration.
      const ws = v.weights || [];
      for (let k = 1; k <= 8; k++) {
        const t = document.getElementById("net-w" + k);
        if (t) t.textContent = "w" + k + " = " + (ws.length === 8 ? ws[k - 1] : val("w" + k)).toFixed(3);
      }
      for (const n of ["i1", "i2"]) {
        const t = document.getElementById("net-" + n);
        if (t) t.textContent = n + " = " + val(n).toFixed(2);
      }
    }
    for (const s of sliders) s.addEventListener("input", update);
    document.getElementById("reset").addEventListener("click", () => {
      for (const s of sliders) s.value = s.dataset.start;
      update();
    });
    const sw = answer(wasm.bp_sweep(100));
    chart(document.getElementById("sweep"),
      sw.loss.map((ys, k) => ({ ys, color: COLORS[k % COLORS.length], label: "η " + sw.lrs[k] })), null,
      "iteration", "E_total");
    // One rate of the six, chosen, on its own axes beside the combined chart.
    const pick = document.getElementById("sweep-rate");
    pick.innerHTML = sw.lrs.map((r, k) => "<option value=\"" + k + "\"" + (sw.lrs[k] === 0.5 ? " selected" : "") +
      ">η = " + r + "</option>").join("");
    function one() {
      const k = parseInt(pick.value, 10) || 0;
      chart(document.getElementById("sweep-one"),
        [{ ys: sw.loss[k], color: COLORS[k % COLORS.length], label: "η " + sw.lrs[k] }], null,
        "iteration", "E_total");
    }
    pick.addEventListener("change", one);
    one();
    // ?selftest: start from the spreadsheet; ?selftest&lr=1.2&w1=-0.5…: then move those
    // sliders, as a reader would (a test compares the blocks with `backprop explain`).
    if (query.has("selftest")) {
      for (const s of sliders) {
        s.value = s.dataset.start;
        if (query.has(s.dataset.name)) s.value = query.get(s.dataset.name);
      }
    }
    update();
    document.body.dataset.selftest = "part1-done";
  }

  function part2() {
    withBytes(bytesOf(window.GRADSPEC_WEIGHTS), (p, n) => answer(wasm.net_load(p, n)));
    const pad = document.getElementById("pad");
    const ctx = pad.getContext("2d", { willReadFrequently: true });
    const err = document.getElementById("draw-error");
    function clear() {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, pad.width, pad.height);
    }
    clear();

    // Gray bytes (w×h) as an ImageData.
    function grayImage(bytes, w, h) {
      const img = new ImageData(w, h);
      for (let i = 0; i < w * h; i++) {
        img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = bytes[i];
        img.data[4 * i + 3] = 255;
      }
      return img;
    }
    // Draws gray bytes scaled up by `s` (nearest) onto `canvas` at (x, y).
    function blit(canvas, bytes, w, h, x, y, s) {
      const tmp = document.createElement("canvas");
      tmp.width = w; tmp.height = h;
      tmp.getContext("2d").putImageData(grayImage(bytes, w, h), 0, 0);
      const g = canvas.getContext("2d");
      g.imageSmoothingEnabled = false;
      g.drawImage(tmp, x, y, w * s, h * s);
    }

    function predict() {
      const img = ctx.getImageData(0, 0, pad.width, pad.height);
      let v;
      try {
        v = withBytes(img.data, (p) => answer(wasm.digit_predict(p, pad.width, pad.height)));
      } catch (e) {
        err.textContent = e.message;
        document.getElementById("prediction").textContent = "–";
        return;
      }
      err.textContent = "";
      document.getElementById("prediction").textContent = String(v.prediction);
      const rows = v.probs.map((p, d) =>
        "<tr" + (d === v.prediction ? " class=\"top\"" : "") + "><td>" + d +
        "</td><td class=\"bar\"><span style=\"width:" + (100 * p).toFixed(1) + "%\"></span></td><td>" +
        (100 * p).toFixed(2) + "%</td></tr>");
      const table = document.getElementById("draw-probs");
      table.innerHTML = rows.join("");
      table.dataset.probs = JSON.stringify(v.probs);
      blit(document.getElementById("seen"), v.image, 28, 28, 0, 0, 4);
      const maps = document.getElementById("draw-maps");
      maps.textContent = "";
      for (const m of v.maps) {
        const plane = m.height * m.width, cols = Math.min(8, m.channels);
        const s = Math.max(1, Math.floor(72 / Math.max(m.height, m.width)));
        const c = document.createElement("canvas");
        c.width = cols * (m.width * s + 2) + 2;
        c.height = Math.ceil(m.channels / cols) * (m.height * s + 2) + 2;
        const cg = c.getContext("2d");
        cg.fillStyle = "#bbb";
        cg.fillRect(0, 0, c.width, c.height);
        for (let k = 0; k < m.channels; k++) {
          blit(c, m.bytes.slice(k * plane, (k + 1) * plane), m.width, m.height,
            2 + (k % cols) * (m.width * s + 2), 2 + Math.floor(k / cols) * (m.height * s + 2), s);
        }
        const f = document.createElement("figure");
        const cap = document.createElement("figcaption");
        cap.textContent = m.name + " " + m.channels + "×" + m.height + "×" + m.width;
        f.append(cap, c);
        maps.append(f);
      }
    }

    let down = false, last = null;
    function at(e) {
      const r = pad.getBoundingClientRect();
      return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
    }
    pad.addEventListener("pointerdown", (e) => {
      down = true; last = at(e); pad.setPointerCapture(e.pointerId);
    });
    pad.addEventListener("pointermove", (e) => {
      if (!down) return;
      const p = at(e);
      ctx.strokeStyle = "#000"; ctx.lineWidth = 20; ctx.lineCap = "round"; ctx.lineJoin = "round";
      ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
      last = p;
    });
    const end = () => { if (down) { down = false; predict(); } };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    document.getElementById("clear").addEventListener("click", () => {
      clear();
      document.getElementById("prediction").textContent = "–";
      document.getElementById("draw-probs").innerHTML = "";
      document.getElementById("draw-maps").textContent = "";
      err.textContent = "";
    });

    // ?digit=<784 bytes in hex, white on black as in MNIST>: draw that digit onto the canvas
    // (dark on light, each pixel a 10×10 square) and read it, as a test does.
    if (query.has("digit")) {
      const hex = query.get("digit");
      if (hex.length !== 2 * 784) throw new Error("?digit= must hold 784 bytes in hex");
      const px = new Uint8Array(784);
      for (let i = 0; i < 784; i++) px[i] = parseInt(hex.substr(2 * i, 2), 16);
      const s = pad.width / 28, img = ctx.createImageData(pad.width, pad.height);
      for (let y = 0; y < pad.height; y++) {
        for (let x = 0; x < pad.width; x++) {
          const v = 255 - px[Math.floor(y / s) * 28 + Math.floor(x / s)], i = 4 * (y * pad.width + x);
          img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
          img.data[i + 3] = 255;
        }
      }
      ctx.putImageData(img, 0, 0);
      predict();
      document.body.dataset.selftest = "part2-done";
    }
  }

  function main() {
    if (!window.GRADSPEC_WASM) throw new Error("wasm.js did not load");
    load();
    if (document.body.classList.contains("part1")) part1();
    if (document.body.classList.contains("part2")) part2();
  }
  try {
    main();
  } catch (e) {
    report(e && e.stack ? e.stack : e);
  }
})();
