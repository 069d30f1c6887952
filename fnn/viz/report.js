// The training report's script (fnn/viz/report.html): finds the animation that
// matplotlib's FuncAnimation.to_jshtml made, keeps a caption and data-frame in step
// with it, opens the frame named in the address (report.html#frame=N) and steps
// with the arrow keys. The captions, one per frame, are the JSON in #fnn-captions.
(function () {
  var captions = JSON.parse(document.getElementById("fnn-captions").textContent);
  var root = document.getElementById("fnn-report");
  function animation() {
    var slider = root.querySelector("input.anim-slider");
    return slider ? window["anim" + slider.id.replace("_anim_slider", "")] : undefined;
  }
  function show(frame) {
    root.setAttribute("data-frame", frame);
    document.getElementById("fnn-caption").textContent =
      "frame " + frame + " of " + (captions.length - 1) + ": " + captions[frame];
  }
  function fromAddress() {
    var m = /frame=(\d+)/.exec(window.location.hash);
    if (!m) return;
    var slider = root.querySelector("input.anim-slider");
    slider.value = Math.min(parseInt(m[1], 10), captions.length - 1);
    slider.dispatchEvent(new Event("input"));          // as if the user dragged it
  }
  function start() {
    var anim = animation();
    if (!anim) { setTimeout(start, 10); return; }
    var setFrame = anim.set_frame;
    anim.set_frame = function (frame) { setFrame.call(anim, frame); show(anim.current_frame); };
    show(anim.current_frame);
    fromAddress();
    window.addEventListener("hashchange", fromAddress);
    document.addEventListener("keydown", function (e) {
      if (e.key === "ArrowRight") anim.next_frame();
      if (e.key === "ArrowLeft") anim.previous_frame();
    });
  }
  window.addEventListener("load", start);
})();
