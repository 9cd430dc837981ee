/* llm-vitals: formatting and chart helpers shared by the status page and `report`.
   Built on uPlot (loaded before this file). Every chart takes a container element and
   plain column arrays; times are unix seconds, latencies seconds. */
(function () {
  "use strict";

  var OUTCOME_COLORS = {
    ok: "#1a7f37", timeout: "#8250df", connect_error: "#cf222e", http_error: "#d1242f",
    rate_limited: "#bc4c00", stream_error: "#bf3989", content_mismatch: "#9a6700"
  };
  var PHASES = [
    { key: "connect", label: "connect (DNS+TCP)", color: "#8c959f" },
    { key: "tls", label: "TLS", color: "#6e7781" },
    { key: "wait", label: "to first byte", color: "#54aeff" },
    { key: "first", label: "to first token", color: "#0969da" },
    { key: "stream", label: "stream", color: "#2da44e" }
  ];

  function fmtDur(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (v === 0) return "0";
    if (v < 0.001) return (v * 1000).toFixed(2) + " ms";
    if (v < 1) return Math.round(v * 1000) + " ms";
    if (v < 60) return v.toFixed(2) + " s";
    return Math.round(v) + " s";
  }

  function fmtAge(s) {
    if (s === null || s === undefined || isNaN(s)) return "–";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function fmtPct(r) {
    if (r === null || r === undefined || isNaN(r)) return "–";
    if (r >= 1) return "100%";
    var p = r * 100;
    return (p >= 99 ? p.toFixed(2) : p.toFixed(1)) + "%";
  }

  function fmtNum(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    return Number(v).toFixed(digits === undefined ? 1 : digits);
  }

  function fmtUsd(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    return "$" + (v < 0.01 ? v.toFixed(5) : v.toFixed(2));
  }

  function fmtTime(t) {
    var d = new Date(t * 1000);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  /* el("td", {class: "x", title: "y"}, ["text", childNode]) */
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === null || attrs[k] === undefined) continue;
        if (k === "text") n.textContent = attrs[k];
        else if (k === "onclick") n.addEventListener("click", attrs[k]);
        else n.setAttribute(k, attrs[k]);
      }
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return n;
  }

  function widthOf(container, fallback) {
    var w = container.clientWidth || (container.parentNode && container.parentNode.clientWidth) || fallback;
    return Math.max(200, Math.floor(w));
  }

  function durAxis(label) {
    return {
      label: label, labelSize: 16, size: 56, stroke: "#57606a",
      grid: { stroke: "#eaeef2", width: 1 }, ticks: { stroke: "#d0d7de", width: 1 },
      values: function (u, splits) { return splits.map(fmtDur); }
    };
  }

  function timeAxis() {
    return { stroke: "#57606a", grid: { stroke: "#eaeef2", width: 1 }, ticks: { stroke: "#d0d7de", width: 1 } };
  }

  function zeroRange(u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; }

  function make(opts, data, container) {
    container.textContent = "";
    var u = new uPlot(opts, data, container);
    container.setAttribute("data-chart", "drawn");
    return u;
  }

  function empty(container, text) {
    container.textContent = "";
    container.appendChild(el("div", { class: "chart-empty", text: text || "no data in this range" }));
    container.setAttribute("data-chart", "empty");
  }

  /* p50/p95 per bucket, no axes: one table cell. */
  function sparkline(container, t, p50, p95, w, h) {
    var has = p50.some(function (v) { return v !== null; });
    if (!has) { empty(container, "no probes"); return null; }
    return make({
      width: w || 180, height: h || 34, pxAlign: 0,
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: true }, y: { range: zeroRange } },
      axes: [{ show: false }, { show: false }],
      // points too: an isolated bucket (a gap either side) has no line to draw
      series: [{}, { stroke: "#0969da", width: 1.25, points: { show: true, size: 3, fill: "#0969da" } },
        { stroke: "#fb8f44", width: 1, dash: [3, 2], points: { show: true, size: 3, fill: "#fb8f44" } }]
    }, [t, p50, p95], container);
  }

  /* Every probe: TTFT and e2e lines, failed probes as coloured markers (one series per outcome). */
  function timeline(container, probes, h) {
    var t = probes.t;
    if (!t.length) { empty(container); return null; }
    var top = 0;
    for (var i = 0; i < t.length; i++) {
      var v = probes.e2e[i] !== null ? probes.e2e[i] : probes.ttft[i];
      if (v !== null && v > top) top = v;
    }
    top = top > 0 ? top : 1;
    var outcomes = [];
    probes.outcome.forEach(function (o) { if (o !== "ok" && outcomes.indexOf(o) < 0) outcomes.push(o); });
    var ttft = probes.outcome.map(function (o, i) { return o === "ok" ? probes.ttft[i] : null; });
    var e2e = probes.outcome.map(function (o, i) { return o === "ok" ? probes.e2e[i] : null; });
    var data = [t, ttft, e2e];
    var series = [{},
      { label: "TTFT", stroke: "#0969da", width: 1.25, points: { show: t.length < 400, size: 4 }, value: function (u, v) { return fmtDur(v); } },
      { label: "e2e", stroke: "#2da44e", width: 1, points: { show: false }, value: function (u, v) { return fmtDur(v); } }];
    outcomes.forEach(function (o) {
      // a failed probe sits at its own latency when it has one, else on the top edge
      data.push(probes.outcome.map(function (x, i) {
        if (x !== o) return null;
        var v = probes.e2e[i] !== null ? probes.e2e[i] : probes.ttft[i];
        return v !== null ? v : top;
      }));
      var c = OUTCOME_COLORS[o] || "#cf222e";
      series.push({ label: o, stroke: c, width: 0, paths: function () { return null; },
        points: { show: true, size: 9, width: 2, stroke: c, fill: c + "66" },
        value: function (u, v) { return v === null ? "–" : "×"; } });
    });
    return make({
      width: widthOf(container, 900), height: h || 260,
      scales: { x: { time: true }, y: { range: zeroRange } },
      axes: [timeAxis(), durAxis()],
      series: series
    }, data, container);
  }

  /* Counts per latency bin (edges has one more entry than counts). */
  function histogram(container, edges, counts, label, h, w) {
    if (!counts.length || !counts.some(function (c) { return c > 0; })) { empty(container); return null; }
    var x = edges.slice(0, counts.length);
    var step = edges.length > 1 ? edges[1] - edges[0] : 1;
    return make({
      width: w || widthOf(container, 440), height: h || 220,
      cursor: { points: { show: false } },
      scales: { x: { time: false, range: function () { return [edges[0], edges[edges.length - 1]]; } }, y: { range: zeroRange } },
      axes: [{ stroke: "#57606a", grid: { show: false }, values: function (u, s) { return s.map(fmtDur); } },
        { stroke: "#57606a", size: 44, grid: { stroke: "#eaeef2" } }],
      series: [{ value: function (u, v) { return v === null ? "–" : fmtDur(v) + "–" + fmtDur(v + step); } },
        { label: label || "probes", stroke: "#0969da", fill: "#0969da55", width: 1,
          paths: uPlot.paths.bars({ size: [1, 100], align: 1 }), points: { show: false } }]
    }, [x, counts], container);
  }

  /* Equal bins from the 0.5th to the 99.5th percentile (outliers land in the end bins). */
  function binCounts(values, bins) {
    var vs = values.filter(function (v) { return v !== null && !isNaN(v); }).sort(function (a, b) { return a - b; });
    if (!vs.length) return { edges: [], counts: [] };
    var lo = vs[Math.floor((vs.length - 1) * 0.005)], hi = vs[Math.ceil((vs.length - 1) * 0.995)];
    if (hi <= lo) { lo = Math.max(0, lo - 0.001); hi = hi + 0.001; }
    var edges = [], counts = [];
    for (var i = 0; i <= bins; i++) edges.push(lo + (hi - lo) * i / bins);
    for (i = 0; i < bins; i++) counts.push(0);
    vs.forEach(function (v) {
      counts[Math.max(0, Math.min(bins - 1, Math.floor((v - lo) / (hi - lo) * bins)))] += 1;
    });
    return { edges: edges, counts: counts };
  }

  function median(a) {
    if (!a.length) return null;
    a.sort(function (x, y) { return x - y; });
    var m = a.length >> 1;
    return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
  }

  /* Median phase durations per time bucket, stacked: where the time of a probe goes. */
  function phases(container, probes, buckets, h) {
    var t = probes.t;
    var idx = [];
    for (var i = 0; i < t.length; i++) if (probes.outcome[i] === "ok" && probes.ttft[i] !== null) idx.push(i);
    if (!idx.length) { empty(container); return null; }
    var t0 = t[idx[0]], t1 = t[idx[idx.length - 1]];
    var n = Math.max(1, Math.min(buckets || 48, idx.length));
    var width = Math.max((t1 - t0) / n, 1e-3);
    var acc = [];
    for (var b = 0; b < n; b++) acc.push({ connect: [], tls: [], wait: [], first: [], stream: [] });
    idx.forEach(function (i) {
      var b = Math.min(n - 1, Math.floor((t[i] - t0) / width));
      var connect = probes.connect[i] || 0, tls = probes.tls[i] || 0;
      var ttfb = probes.ttfb[i] !== null ? probes.ttfb[i] : connect + tls;
      acc[b].connect.push(connect);
      acc[b].tls.push(tls);
      acc[b].wait.push(Math.max(0, ttfb - connect - tls));
      acc[b].first.push(Math.max(0, probes.ttft[i] - ttfb));
      acc[b].stream.push(probes.e2e[i] !== null ? Math.max(0, probes.e2e[i] - probes.ttft[i]) : 0);
    });
    var xs = [], raw = {};
    PHASES.forEach(function (p) { raw[p.key] = []; });
    acc.forEach(function (a, b) {
      if (!a.connect.length) return;
      xs.push(t0 + (b + 0.5) * width);
      PHASES.forEach(function (p) { raw[p.key].push(median(a[p.key])); });
    });
    // cumulative, drawn from the top layer down so each fill covers the one below it
    var cum = [], run = xs.map(function () { return 0; });
    PHASES.forEach(function (p) {
      run = run.map(function (v, i) { return v + raw[p.key][i]; });
      cum.push(run.slice());
    });
    var data = [xs], series = [{}];
    for (var k = PHASES.length - 1; k >= 0; k--) {
      (function (p) {
        data.push(cum[k]);
        series.push({ label: p.label, stroke: p.color, fill: p.color + "cc", width: 1, points: { show: false },
          paths: uPlot.paths.stepped({ align: 1 }),
          value: function (u, v, si, i) { return i === null || i === undefined ? "–" : fmtDur(raw[p.key][i]); } });
      })(PHASES[k]);
    }
    return make({
      width: widthOf(container, 440), height: h || 220,
      scales: { x: { time: true }, y: { range: zeroRange } },
      axes: [timeAxis(), durAxis("median")],
      series: series
    }, data, container);
  }

  /* A value per probe (e.g. tokens/s), ok probes only. */
  function line(container, t, values, label, color, fmt, h) {
    if (!values.some(function (v) { return v !== null; })) { empty(container); return null; }
    return make({
      width: widthOf(container, 900), height: h || 180,
      scales: { x: { time: true }, y: { range: zeroRange } },
      axes: [timeAxis(), { stroke: "#57606a", size: 56, grid: { stroke: "#eaeef2" },
        values: function (u, s) { return s.map(function (v) { return fmt ? fmt(v) : fmtNum(v, 0); }); } }],
      series: [{}, { label: label, stroke: color || "#8250df", width: 1.25, points: { show: t.length < 400, size: 4 },
        value: function (u, v) { return fmt ? fmt(v) : fmtNum(v); } }]
    }, [t, values], container);
  }

  /* Grouped bars per category (e.g. p50 and p95 TTFT per model). groups: [{label, values, color}] */
  function bars(container, labels, groups, fmt, h) {
    if (!labels.length) { empty(container); return null; }
    var x = labels.map(function (_, i) { return i; });
    var size = 0.8 / groups.length;
    var data = [x], series = [{ value: function (u, v) { return v === null ? "–" : labels[v]; } }];
    groups.forEach(function (g, gi) {
      data.push(g.values);
      var shift = (gi - (groups.length - 1) / 2) * size;
      series.push({ label: g.label, stroke: g.color, fill: g.color + "bb", width: 1, points: { show: false },
        // bars side by side: each group's left edge and width given in x units (category index)
        paths: uPlot.paths.bars({ disp: {
          x0: { unit: 1, values: function () { return x.map(function (v) { return v + shift - size / 2; }); } },
          size: { unit: 1, values: function () { return x.map(function () { return size * 0.92; }); } } } }),
        value: function (u, v) { return fmt ? fmt(v) : fmtNum(v); } });
    });
    return make({
      width: widthOf(container, 900), height: h || 260,
      scales: { x: { time: false, range: function () { return [-0.6, labels.length - 0.4]; } }, y: { range: zeroRange } },
      axes: [{ stroke: "#57606a", grid: { show: false }, size: 64, rotate: 0, incrs: [1],
        values: function (u, s) { return s.map(function (v) { return labels[v] !== undefined ? shorten(labels[v], 22) : ""; }); } },
      { stroke: "#57606a", size: 60, grid: { stroke: "#eaeef2" },
        values: function (u, s) { return s.map(function (v) { return fmt ? fmt(v) : fmtNum(v, 0); }); } }],
      series: series
    }, data, container);
  }

  /* A capacity sweep at one prompt size: ttft p50/p95 (left axis) and aggregate output
     tokens/s (right axis) against concurrency (log2 axis); the saturation level ringed. */
  function concurrency(container, levels, knee, h) {
    var rows = levels.filter(function (l) { return l.ttft_p50 !== null || l.aggregate_output_tps !== null; });
    if (!rows.length) { empty(container, "no successful stream in this sweep"); return null; }
    var x = rows.map(function (l) { return l.concurrency; });
    var kneeY = rows.map(function (l) { return knee !== null && knee !== undefined && l.concurrency === knee ? l.ttft_p50 : null; });
    var u = make({
      width: widthOf(container, 440), height: h || 240,
      scales: { x: { time: false, distr: x.length > 1 && x[0] > 0 ? 3 : 1, log: 2 }, y: { range: zeroRange },
        tps: { range: zeroRange } },
      axes: [{ stroke: "#57606a", grid: { stroke: "#eaeef2" }, label: "concurrent streams", labelSize: 16,
        values: function (u, s) { return s.map(function (v) { return x.indexOf(v) >= 0 ? String(v) : ""; }); } },
        durAxis("ttft"),
        { scale: "tps", side: 1, stroke: "#8250df", size: 56, grid: { show: false }, label: "tokens/s", labelSize: 16,
          values: function (u, s) { return s.map(function (v) { return fmtNum(v, 0); }); } }],
      series: [{ label: "concurrency", value: function (u, v) { return v === null ? "–" : String(v); } },
        { label: "ttft p50", stroke: "#0969da", width: 1.5, points: { show: true, size: 5 }, value: function (u, v) { return fmtDur(v); } },
        { label: "ttft p95", stroke: "#fb8f44", width: 1, dash: [4, 2], points: { show: true, size: 4 }, value: function (u, v) { return fmtDur(v); } },
        { label: "aggregate tokens/s", scale: "tps", stroke: "#8250df", width: 1.5, points: { show: true, size: 5 },
          value: function (u, v) { return fmtNum(v); } },
        { label: "saturation", stroke: "#cf222e", width: 0, paths: function () { return null; },
          points: { show: true, size: 13, width: 2, stroke: "#cf222e", fill: "#cf222e22" },
          value: function (u, v) { return v === null ? "–" : "here"; } }]
    }, [x, rows.map(function (l) { return l.ttft_p50; }), rows.map(function (l) { return l.ttft_p95; }),
      rows.map(function (l) { return l.aggregate_output_tps; }), kneeY], container);
    container.setAttribute("data-levels", String(rows.length));
    return u;
  }

  /* Plots (one per prompt size) and the levels' table of one sweep run: the status page and
     the report draw the same thing. */
  function sweepRun(box, run, h) {
    var sizes = [], charts = [];
    run.levels.forEach(function (l) {
      var k = l.prompt_tokens === null ? "default" : String(l.prompt_tokens);
      if (sizes.indexOf(k) < 0) sizes.push(k);
    });
    var sat = run.saturation;
    var grid = el("div", { class: sizes.length > 1 ? "grid2" : null });
    box.appendChild(grid);
    sizes.forEach(function (k) {
      var levels = run.levels.filter(function (l) { return (l.prompt_tokens === null ? "default" : String(l.prompt_tokens)) === k; });
      var knee = sat && (sat.prompt_tokens === null ? "default" : String(sat.prompt_tokens)) === k ? sat.concurrency : null;
      var c = el("div", { class: "chart concurrency", "data-prompt-tokens": k });
      grid.appendChild(el("div", null, [el("div", { class: "note", text: k === "default" ? "the probe's own prompt" : "prompt of " + k + " tokens" }), c]));
      charts.push({ c: c, levels: levels, knee: knee });
    });
    var tb = el("tbody");
    run.levels.forEach(function (l) {
      var errs = Object.keys(l.errors || {}).map(function (e) { return e + " " + l.errors[e]; }).join(", ");
      if (l.stopped) errs += (errs ? "; " : "") + "stopped: " + l.stopped;
      if (l.backoff_seconds) errs += (errs ? "; " : "") + "backed off " + fmtNum(l.backoff_seconds) + " s on 429";
      var knee = sat && sat.concurrency === l.concurrency && sat.prompt_tokens === l.prompt_tokens;
      tb.appendChild(el("tr", { class: knee ? "knee" : null }, [el("td", { class: "num", text: String(l.concurrency) }),
        el("td", { class: "num", text: l.prompt_tokens === null ? "–" : String(l.prompt_tokens) }),
        el("td", { class: "num", text: l.ok + " / " + l.requests }), el("td", { class: "num", text: fmtDur(l.ttft_p50) }),
        el("td", { class: "num", text: fmtDur(l.ttft_p95) }), el("td", { class: "num", text: fmtDur(l.e2e_p50) }),
        el("td", { class: "num", text: fmtNum(l.output_tps_p50) }), el("td", { class: "num", text: fmtNum(l.aggregate_output_tps) }),
        el("td", { text: errs || "none" })]));
    });
    box.appendChild(el("details", { class: "levels" }, [el("summary", { text: "every level" }),
      el("table", { class: "compare" }, [el("thead", null, [el("tr", null, ["Streams", "Prompt", "ok", "TTFT p50",
        "TTFT p95", "e2e p50", "Tokens/s p50", "Aggregate tokens/s", "Errors"].map(function (t) { return el("th", { text: t }); }))]), tb])]));
    box.appendChild(el("p", { class: "quiet", text: sat ? "Saturates at " + sat.concurrency + " streams" +
      (sat.prompt_tokens ? " (prompt " + sat.prompt_tokens + " tokens)" : "") + ": " + sat.reason
      : "No saturation within the levels swept." }));
    // drawn once in the document (uPlot measures its container)
    return charts.map(function (p) { return concurrency(p.c, p.levels, p.knee, h); });
  }

  function shorten(s, n) { return s.length > n ? "…" + s.slice(s.length - n + 1) : s; }

  window.LV = {
    fmtDur: fmtDur, fmtAge: fmtAge, fmtPct: fmtPct, fmtNum: fmtNum, fmtUsd: fmtUsd, fmtTime: fmtTime, el: el,
    sparkline: sparkline, timeline: timeline, histogram: histogram, binCounts: binCounts, phases: phases,
    line: line, bars: bars, concurrency: concurrency, sweepRun: sweepRun, OUTCOME_COLORS: OUTCOME_COLORS
  };
})();
