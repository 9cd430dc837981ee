/* llm-vitals report: everything it draws is in the document (no request is made). */
(function () {
  "use strict";
  var LV = window.LV, el = LV.el;
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var app = document.getElementById("app");
  var targets = boot.targets;

  function anchor(key) { return "t-" + key.replace(/[^A-Za-z0-9_.-]/g, "_"); }

  function errText(errors) {
    var keys = Object.keys(errors);
    return keys.length ? keys.map(function (k) { return k + " " + errors[k]; }).join(", ") : "none";
  }

  function availClass(r) {
    if (r === null || r === undefined) return "";
    return r >= 0.999 ? "good" : r >= 0.99 ? "warn" : "bad";
  }

  app.appendChild(el("header", null, [
    el("div", { class: "brand" }, [el("span", { class: "logo", text: "◉" }), "llm-vitals report",
      el("span", { class: "region", text: "region " + boot.region })]),
    el("div", { class: "meta" }, [el("span", { text: LV.fmtTime(boot.since) + " → " + LV.fmtTime(boot.until) }),
      el("span", { text: "generated " + LV.fmtTime(boot.generated_at) })])
  ]));

  var probes = targets.reduce(function (n, t) { return n + t.summary.probes; }, 0);
  app.appendChild(el("p", { class: "note", text: probes + " probes from " + targets.length + " targets, read from " +
    boot.source + ". Latency and tokens/s are of ok probes; availability counts every probe." }));

  // -- summary --------------------------------------------------------------------------
  var tb = el("tbody");
  targets.forEach(function (t) {
    var s = t.summary;
    tb.appendChild(el("tr", { "data-target": s.target }, [
      el("td", null, [el("a", { href: "#" + anchor(s.target), text: s.target })]),
      el("td", { class: "num", text: String(s.probes) }),
      el("td", { class: "num " + availClass(s.availability), text: LV.fmtPct(s.availability) }),
      el("td", { class: "num", text: LV.fmtDur(s.ttft.p50) }), el("td", { class: "num", text: LV.fmtDur(s.ttft.p95) }),
      el("td", { class: "num", text: LV.fmtDur(s.ttft.p99) }), el("td", { class: "num", text: LV.fmtDur(s.e2e.p50) }),
      el("td", { class: "num", text: LV.fmtDur(s.e2e.p95) }), el("td", { class: "num", text: LV.fmtNum(s.output_tps.p50) }),
      el("td", { text: errText(s.errors) }), el("td", { class: "num", text: LV.fmtUsd(s.cost_usd) })]));
  });
  app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Summary" }),
    targets.length ? el("table", { class: "compare", id: "summary" }, [el("thead", null, [el("tr", null,
      ["Target", "Probes", "Availability", "TTFT p50", "TTFT p95", "TTFT p99", "e2e p50", "e2e p95", "Tokens/s p50",
        "Errors", "Cost"].map(function (h) { return el("th", { text: h }); }))]), tb])
      : el("p", { class: "quiet", text: "No probe stored in this range." })]));

  // -- comparison -------------------------------------------------------------------------
  var labels = targets.map(function (t) { return t.summary.target; });
  var cmpTtft = el("div", { class: "chart", id: "chart-compare-ttft" });
  var cmpAvail = el("div", { class: "chart", id: "chart-compare-avail" });
  var cmpTps = el("div", { class: "chart", id: "chart-compare-tps" });
  app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Comparison across targets: TTFT p50 · p95 · p99" }), cmpTtft]));
  app.appendChild(el("div", { class: "grid2" }, [
    el("section", { class: "card" }, [el("h2", { text: "Availability" }), cmpAvail]),
    el("section", { class: "card" }, [el("h2", { text: "Output tokens/s (p50)" }), cmpTps])]));

  // -- per target: timeline and distribution --------------------------------------------------
  var per = [];
  targets.forEach(function (t) {
    var tl = el("div", { class: "chart timeline" }), hist = el("div", { class: "chart dist" });
    per.push({ t: t, tl: tl, hist: hist });
    app.appendChild(el("section", { class: "card", id: anchor(t.summary.target) }, [
      el("h2", { text: t.summary.target }),
      el("div", { class: "grid2" }, [
        el("div", null, [el("div", { class: "note", text: "TTFT p50 · p95 per " + LV.fmtAge(t.timeline.t.length > 1 ? t.timeline.t[1] - t.timeline.t[0] : 0) +
          " (lines), failed probes (red bars, right axis)" }), tl]),
        el("div", null, [el("div", { class: "note", text: "TTFT distribution" }), hist])])]));
  });

  var sweepCard = el("section", { class: "card", id: "concurrency" }, [el("h2", { text: "Concurrency" })]);
  app.appendChild(sweepCard);
  if (!boot.sweeps.length) sweepCard.appendChild(el("p", { class: "quiet", text: boot.concurrency_note }));
  var sweepBoxes = boot.sweeps.map(function (w) {
    var outcomes = {};
    w.runs.forEach(function (r) { outcomes[r.outcome] = (outcomes[r.outcome] || 0) + 1; });
    var box = el("div", { class: "sweep", "data-sweep": w.name }, [el("div", { class: "sweep-head" }, [
      el("span", { class: "name", text: w.name }), el("span", { text: w.target }),
      el("span", { class: "quiet", text: "runs in range: " + Object.keys(outcomes).map(function (k) { return k + " " + outcomes[k]; }).join(", ") }),
      w.last ? el("span", { class: "quiet", text: "plot: the run of " + LV.fmtTime(w.last.started_at) + " (" + w.last.outcome + ")" }) : null])]);
    sweepCard.appendChild(box);
    return { box: box, w: w };
  });

  function timeline(container, d) {
    if (!d.p50.some(function (v) { return v !== null; }) && !d.failed.some(function (v) { return v; })) {
      container.appendChild(el("div", { class: "chart-empty", text: "no probes" }));
      return null;
    }
    container.textContent = "";
    var u = new uPlot({
      width: Math.max(300, container.clientWidth || 600), height: 200,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } },
        n: { range: function (u, min, max) { return [0, Math.max(1, (max || 0) * 3)]; } } },
      axes: [{ stroke: "#57606a", grid: { stroke: "#eaeef2" } },
        { stroke: "#57606a", size: 64, grid: { stroke: "#eaeef2" }, values: function (u, s) { return s.map(LV.fmtDur); } },
        { scale: "n", side: 1, stroke: "#cf222e", size: 40, grid: { show: false },
          values: function (u, s) { return s.map(function (v) { return v % 1 ? "" : String(v); }); } }],
      series: [{},
        { label: "p50", stroke: "#0969da", width: 1.25, value: function (u, v) { return LV.fmtDur(v); } },
        { label: "p95", stroke: "#fb8f44", width: 1, dash: [4, 2], value: function (u, v) { return LV.fmtDur(v); } },
        { label: "failed", scale: "n", stroke: "#cf222e", fill: "#cf222e88", width: 0, points: { show: false },
          paths: uPlot.paths.bars({ size: [0.9, 12] }) }]
    }, [d.t, d.p50, d.p95, d.failed], container);
    container.setAttribute("data-chart", "drawn");
    return u;
  }

  function draw() {
    var short = labels.map(function (l) { return l.split("/").slice(1).join("/"); });
    LV.bars(cmpTtft, short, [
      { label: "p50", color: "#0969da", values: targets.map(function (t) { return t.summary.ttft.p50; }) },
      { label: "p95", color: "#fb8f44", values: targets.map(function (t) { return t.summary.ttft.p95; }) },
      { label: "p99", color: "#cf222e", values: targets.map(function (t) { return t.summary.ttft.p99; }) }], LV.fmtDur, 300);
    LV.bars(cmpAvail, short, [{ label: "availability", color: "#1a7f37",
      values: targets.map(function (t) { return t.summary.availability; }) }], LV.fmtPct, 240);
    LV.bars(cmpTps, short, [{ label: "tokens/s p50", color: "#8250df",
      values: targets.map(function (t) { return t.summary.output_tps.p50; }) }], null, 240);
    per.forEach(function (p) {
      timeline(p.tl, p.t.timeline);
      LV.histogram(p.hist, p.t.hist.edges, p.t.hist.counts, "probes", 200);
    });
    sweepBoxes.forEach(function (b) {
      if (b.w.last) LV.sweepRun(b.box, b.w.last, 220);
      else b.box.appendChild(el("p", { class: "quiet", text: "No measured run in this range." }));
    });
    document.documentElement.setAttribute("data-ready", "1");
  }
  draw();
})();
