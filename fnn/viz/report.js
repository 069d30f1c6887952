// The training report's script (fnn/viz/report.html). The frames and their captions are
// the JSON in #fnn-data: {live, poll_ms, interval, frames: [{src, caption, marks, ...}],
// curves: {src, width, height}, ...}. The slider, the buttons and the arrow keys step through
// the frames; report.html#frame=N opens frame N. Under each frame the curves' picture (the
// same for every frame) gets the frame's marks, drawn here in SVG: a dotted line at its
// epoch, its values as dots, and the epochs after it veiled. A live page (data.live) reloads report-data.js beside it every poll_ms
// through a <script> element (browsers refuse fetch() from file:// pages, not scripts);
// that file calls fnnReportData({...}) with the frames written so far. When training is
// over the data says live: false and the page reloads itself: report.html is then the
// final, self-contained report. Each time the number of frames changes the page says so
// on the console ("fnn report: N frames", "(live)" while training runs).
(function () {
  "use strict";
  var root = document.getElementById("fnn-report");
  var img = document.getElementById("fnn-frame");
  var slider = document.getElementById("fnn-slider");
  var caption = document.getElementById("fnn-caption");
  var status = document.getElementById("fnn-status");
  var play = document.getElementById("fnn-play");
  var curves = document.getElementById("fnn-curves");
  var marks = document.getElementById("fnn-marks");
  var SVG = "http://www.w3.org/2000/svg";
  var data = {frames: [], live: false}, current = 0, timer = null, live = false, follow = true;
  var announced = -1;

  function count() { return data.frames.length; }

  function add(name, attributes) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (k) { e.setAttribute(k, attributes[k]); });
    marks.appendChild(e);
  }

  function mark(frame) {
    while (marks.firstChild) marks.removeChild(marks.firstChild);
    if (!data.curves || !frame.marks) return;
    if (curves.getAttribute("src") !== data.curves.src) curves.setAttribute("src", data.curves.src);
    marks.setAttribute("viewBox", "0 0 " + data.curves.width + " " + data.curves.height);
    frame.marks.forEach(function (m) {
      add("rect", {"class": "fnn-veil", x: m.x, y: m.top, width: Math.max(0, m.right - m.x),
                   height: m.bottom - m.top, fill: "white", "fill-opacity": 0.6});
      add("line", {"class": "fnn-mark", "data-epoch": frame.epoch, x1: m.x, x2: m.x, y1: m.top,
                   y2: m.bottom, stroke: "#444", "stroke-width": 1, "stroke-dasharray": "2,3"});
      m.dots.forEach(function (d) {
        add("circle", {cx: d[0], cy: d[1], r: 4, fill: d[2], stroke: "white", "stroke-width": 1});
      });
    });
  }

  function show(i) {
    if (!count()) return;
    current = Math.max(0, Math.min(i, count() - 1));
    var frame = data.frames[current];
    if (img.getAttribute("src") !== frame.src) img.setAttribute("src", frame.src);
    img.alt = "frame " + current + ": " + frame.caption;
    slider.value = current;
    root.setAttribute("data-frame", current);
    caption.textContent = "frame " + current + " of " + (count() - 1) + ": " + frame.caption;
    mark(frame);
    follow = current === count() - 1;
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    play.innerHTML = "&#x25B6;";
  }

  function start() {
    if (current >= count() - 1) show(0);
    play.innerHTML = "&#x275A;&#x275A;";
    timer = setInterval(function () {
      if (current >= count() - 1) { if (!live) stop(); return; }
      show(current + 1);
    }, data.interval || 400);
  }

  function describe() {
    var n = count();
    if (live) {
      status.textContent = n ? "training: " + n + " frame" + (n === 1 ? "" : "s") +
        " so far; new frames appear as they are written" : "training: waiting for the first frame";
    } else {
      status.textContent = "";
    }
  }

  function receive(next) {
    if (live && !next.live) { window.location.reload(); return; }   // the final report replaced this page
    var wasLast = follow;
    data = next;
    slider.max = Math.max(0, count() - 1);
    root.setAttribute("data-frames", count());
    root.setAttribute("data-live", live ? "true" : "false");
    describe();
    if (count() !== announced) console.info("fnn report: " + count() + " frames" + (live ? " (live)" : ""));
    announced = count();
    if (wasLast || current >= count()) show(count() - 1); else show(current);
  }

  function poll() {
    var s = document.createElement("script");
    s.src = "report-data.js?v=" + Date.now();
    s.onload = s.onerror = function () { s.remove(); setTimeout(poll, data.poll_ms || 1000); };
    document.head.appendChild(s);
  }

  function fromAddress() {
    var m = /frame=(\d+)/.exec(window.location.hash);
    if (m) show(parseInt(m[1], 10));
  }

  window.fnnReportData = receive;
  var first = JSON.parse(document.getElementById("fnn-data").textContent);
  live = !!first.live;
  receive(first);
  show(0);
  fromAddress();
  if (live) { show(count() - 1); setTimeout(poll, data.poll_ms || 1000); }
  slider.addEventListener("input", function () { stop(); show(parseInt(slider.value, 10)); });
  document.getElementById("fnn-first").addEventListener("click", function () { stop(); show(0); });
  document.getElementById("fnn-prev").addEventListener("click", function () { stop(); show(current - 1); });
  document.getElementById("fnn-next").addEventListener("click", function () { stop(); show(current + 1); });
  document.getElementById("fnn-last").addEventListener("click", function () { stop(); show(count() - 1); });
  play.addEventListener("click", function () { if (timer === null) start(); else stop(); });
  window.addEventListener("hashchange", fromAddress);
  document.addEventListener("keydown", function (e) {
    if (e.target === slider) return;                  // the slider steps itself
    if (e.key === "ArrowRight") { stop(); show(current + 1); }
    if (e.key === "ArrowLeft") { stop(); show(current - 1); }
  });
})();
