/* llm-vitals status page: overview (/), one target (/target/P/M/PROBE), comparison (/compare).
   Draws itself from /api/v1/status and /api/v1/history and refreshes them on a timer. */
(function () {
  "use strict";
  var LV = window.LV, el = LV.el;
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var app = document.getElementById("app");
  var root = document.documentElement;
  var STATE_RANK = { firing: 0, failing: 1, pending: 2, anomalous: 3, stale: 4, silenced: 5,
    "pending-first-probe": 6, ok: 7 };
  var STATE_HELP = {
    firing: "an alert on this target is firing and being told",
    pending: "an alert condition holds; it fires once its `for` has passed",
    silenced: "its firing alerts are silenced, in maintenance or inhibited",
    failing: "the last probe failed (no alert fires yet)",
    anomalous: "the detector finds this target off its baseline",
    stale: "no probe result for 3 intervals past the last probe's deadline",
    ok: "last probe ok, no alert", "pending-first-probe": "no probe has completed yet"
  };
  var lastGood = null;

  function api(path) {
    return fetch(path, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (!r.ok) {
        return r.text().then(function (t) { throw new Error(path + ": HTTP " + r.status + " " + t.slice(0, 200)); });
      }
      return r.json();
    });
  }

  function banner(err) {
    var b = document.getElementById("banner");
    if (!b) return;
    if (!err) { b.hidden = true; b.textContent = ""; return; }
    b.hidden = false;
    b.textContent = "Cannot refresh: " + err.message +
      (lastGood ? " — showing data from " + LV.fmtTime(lastGood) : "");
  }

  function stateBadge(state) {
    return el("span", { class: "state state-" + state, title: STATE_HELP[state] || state, text: state });
  }

  function targetLink(key) {
    return el("a", { href: boot.target_url + key.split("/").map(encodeURIComponent).join("/"), text: key });
  }

  function header(active) {
    var nav = el("nav", null, [
      el("a", { href: "/", class: active === "overview" ? "active" : null, text: "Overview" }),
      el("a", { href: "/compare", class: active === "compare" ? "active" : null, text: "Compare" }),
      el("a", { href: "/api/v1/status", text: "API" }),
      el("a", { href: "/metrics", text: "Metrics" }),
      boot.grafana_url ? el("a", { href: boot.grafana_url, text: "Grafana ↗", rel: "noopener" }) : null
    ]);
    return el("header", null, [
      el("div", { class: "brand" }, [el("span", { class: "logo", text: "◉" }), "llm-vitals",
        el("span", { class: "region", text: "region " + boot.region })]),
      nav,
      el("div", { class: "meta", id: "meta" })
    ]);
  }

  function meta(st) {
    var m = document.getElementById("meta");
    if (!m) return;
    m.textContent = "";
    m.appendChild(el("span", { class: st.ready ? "ready yes" : "ready no",
      title: st.ready ? "every target has been probed" : "first probe cycle not finished",
      text: st.ready ? "ready" : "not ready" }));
    if (st.budget && st.budget.paused) m.appendChild(el("span", { class: "ready no", text: "budget paused" }));
    m.appendChild(el("span", { class: "updated", text: "updated " + LV.fmtTime(st.now).slice(11) }));
  }

  // -- overview ------------------------------------------------------------------------
  function overview() {
    app.appendChild(header("overview"));
    app.appendChild(el("div", { id: "banner", class: "banner", hidden: "" }));
    var chips = el("div", { class: "chips", id: "chips" });
    var filter = el("input", { type: "search", id: "filter", placeholder: "filter targets… (provider, model, state)  [/]",
      "aria-label": "filter targets" });
    app.appendChild(el("section", { class: "toolbar" }, [chips, filter]));
    var alertsBox = el("section", { class: "card" }, [el("h2", { text: "Alerts" }), el("div", { id: "alerts" })]);
    app.appendChild(alertsBox);
    var sweepsBox = sweepsCard(null);
    var thead = el("thead", null, [el("tr", null, ["State", "Target", "Last probe", "Last TTFT",
      "TTFT p50 · p95 (5m)", "Avail. 24h", "Avail. 7d", "TTFT 24h (p50 — · p95 ┄)", "Alerts", ""].map(function (h) {
      return el("th", { text: h });
    }))]);
    var tbody = el("tbody", { id: "targets" });
    app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Targets" }),
      el("table", { class: "targets" }, [thead, tbody])]));
    var rows = {}, spark = null, stateFilter = null, status = null;

    filter.addEventListener("input", function () { if (status) render(status); });
    document.addEventListener("keydown", function (e) {  // "/" jumps to the filter, as on most consoles
      if (e.key === "/" && document.activeElement !== filter) { e.preventDefault(); filter.focus(); }
    });

    function row(key) {
      if (rows[key]) return rows[key];
      var cells = {};
      var tr = el("tr", { "data-target": key });
      ["state", "target", "age", "ttft", "q5m", "a24", "a7d", "spark", "alerts", "links"].forEach(function (c) {
        cells[c] = el("td", { class: "c-" + c });
        tr.appendChild(cells[c]);
      });
      cells.target.appendChild(targetLink(key));
      cells.sparkBox = el("div", { class: "spark" });
      cells.spark.appendChild(cells.sparkBox);
      rows[key] = { tr: tr, cells: cells, drawn: null };
      return rows[key];
    }

    function render(st) {
      status = st;
      meta(st);
      var counts = {};
      st.targets.forEach(function (t) { counts[t.state] = (counts[t.state] || 0) + 1; });
      chips.textContent = "";
      Object.keys(STATE_RANK).forEach(function (s) {
        if (!counts[s]) return;
        var chip = el("button", { class: "chip state-" + s + (stateFilter === s ? " on" : ""), title: STATE_HELP[s],
          onclick: function () { stateFilter = stateFilter === s ? null : s; render(status); } },
        [el("b", { text: String(counts[s]) }), " " + s]);
        chips.appendChild(chip);
      });
      chips.appendChild(el("span", { class: "total", text: st.targets.length + " targets" }));
      // the tab says it too, for a page left open beside others
      document.title = (counts.firing ? "(" + counts.firing + " firing) " : "") + "llm-vitals · " + boot.region;
      renderAlerts(document.getElementById("alerts"), st.alerts, true);
      var q = filter.value.trim().toLowerCase();
      var list = st.targets.slice().sort(function (a, b) {
        return (STATE_RANK[a.state] - STATE_RANK[b.state]) || (a.target < b.target ? -1 : 1);
      });
      var seen = {};
      list.forEach(function (t) {
        var r = row(t.target), c = r.cells;
        seen[t.target] = true;
        var visible = (!stateFilter || t.state === stateFilter) &&
          (!q || (t.target + " " + t.state + " " + t.kind).toLowerCase().indexOf(q) >= 0);
        r.tr.hidden = !visible;
        r.tr.setAttribute("data-state", t.state);
        c.state.textContent = "";
        c.state.appendChild(stateBadge(t.state));
        var last = t.last;
        c.age.textContent = "";
        if (last) {
          c.age.appendChild(el("span", { title: last.started_at, text: LV.fmtAge(t.last_probe_age) + " ago" }));
          if (last.outcome !== "ok") {
            c.age.appendChild(el("span", { class: "outcome bad", title: last.error || "", text: last.outcome }));
          }
        } else c.age.textContent = "–";
        c.ttft.textContent = last ? LV.fmtDur(last.ttft) : "–";
        var q5 = (t.quantiles.ttft || {})["5m"] || {};
        c.q5m.textContent = LV.fmtDur(q5["0.5"]) + " · " + LV.fmtDur(q5["0.95"]);
        [["a24", "24h"], ["a7d", "7d"]].forEach(function (p) {
          var a = (t.availability || {})[p[1]] || {};
          c[p[0]].textContent = LV.fmtPct(a.ratio);
          c[p[0]].title = (a.ok || 0) + " / " + (a.probes || 0) + " probes ok";
          c[p[0]].className = "c-" + p[0] + " num " + availClass(a.ratio);
        });
        c.alerts.textContent = "";
        (t.alerts || []).forEach(function (a) {
          c.alerts.appendChild(el("span", { class: "mini sev-" + a.severity + (a.muted ? " muted" : ""),
            title: a.summary + (a.muted ? " (" + a.muted + ")" : ""), text: a.rule }));
        });
        c.links.textContent = "";
        if (t.grafana_url) c.links.appendChild(el("a", { href: t.grafana_url, text: "Grafana ↗", rel: "noopener" }));
        tbody.appendChild(r.tr);  // moves the row (and its sparkline canvas) into sorted order
      });
      Object.keys(rows).forEach(function (k) { if (!seen[k]) { rows[k].tr.remove(); delete rows[k]; } });
      drawSparks();
    }

    function drawSparks() {
      if (!spark) return;
      Object.keys(rows).forEach(function (k) {
        var r = rows[k];
        if (r.drawn === spark) return;
        var s = spark.series[k];
        if (r.chart) { r.chart.destroy(); r.chart = null; }
        if (!s) { r.cells.sparkBox.textContent = "no probes"; r.cells.sparkBox.setAttribute("data-chart", "empty"); }
        else {
          r.chart = LV.sparkline(r.cells.sparkBox, spark.t, s.p50, s.p95, 180, 34);
          var lastI = -1;
          for (var i = s.p50.length - 1; i >= 0; i--) if (s.p50[i] !== null) { lastI = i; break; }
          if (lastI >= 0) r.cells.sparkBox.title = "last 15 min: p50 " + LV.fmtDur(s.p50[lastI]) + ", p95 " + LV.fmtDur(s.p95[lastI]);
        }
        r.drawn = spark;
      });
    }

    function refresh() {
      return api("/api/v1/status").then(function (st) { lastGood = st.now; banner(null); render(st); })
        .catch(banner);
    }
    function refreshSpark() {
      return api("/api/v1/history?metric=ttft&since=24h&bucket=15m").then(function (s) { spark = s; drawSparks(); })
        .catch(banner);
    }
    Promise.all([refresh(), refreshSpark(), sweepsBox.refresh()]).then(ready);
    setInterval(refresh, boot.refresh_seconds * 1000);
    setInterval(refreshSpark, 60000);
    setInterval(sweepsBox.refresh, 30000);
  }

  // -- scheduled capacity sweeps (overview: all of them; a target's page: its own) ------------
  function sweepsCard(target) {
    var box = el("div", { id: "sweeps" });
    var card = el("section", { class: "card", id: "sweeps-card", hidden: "" }, [
      el("h2", { text: "Capacity sweeps: latency and throughput against concurrency" }), box]);
    app.appendChild(card);
    var shown = null;

    function head(w) {
      var last = w.last, st = w.running ? "running" : w.queued ? "waiting for another sweep" : null;
      var runs = w.runs || [];
      var latest = runs[0];
      return el("div", { class: "sweep-head" }, [el("span", { class: "name", text: w.name }), targetLink(w.target),
        el("span", { class: "quiet", text: "schedule " + w.schedule + (w.timezone !== "UTC" ? " (" + w.timezone + ")" : " UTC") }),
        st ? el("span", { class: "state state-pending", text: st }) : null,
        latest ? el("span", { class: "outcome " + (latest.outcome === "ok" ? "" : "bad"), "data-outcome": latest.outcome,
          title: latest.reason || "", text: "last run " + latest.outcome + ", " + LV.fmtAge(Date.now() / 1000 - latest.started_at) + " ago" })
          : el("span", { class: "quiet", text: "not run yet" }),
        w.next_run ? el("span", { class: "quiet", text: "next " + LV.fmtTime(w.next_run) }) : null,
        last && latest !== last ? el("span", { class: "quiet", text: "plot: the run of " + LV.fmtTime(last.started_at) }) : null]);
    }

    function render(data) {
      var list = data.sweeps.filter(function (w) { return !target || w.target === target; });
      card.hidden = !list.length;
      // redraw only when a run finished or the state changed (the plots are not live)
      var sig = JSON.stringify(list.map(function (w) { return [w.name, w.running, w.queued, (w.runs[0] || {}).started_at]; }));
      if (sig === shown) return;
      shown = sig;
      box.textContent = "";
      list.forEach(function (w) {
        var one = el("div", { class: "sweep", "data-sweep": w.name });
        box.appendChild(one);
        one.appendChild(head(w));
        if (w.last) LV.sweepRun(one, w.last, 220);
        else one.appendChild(el("p", { class: "quiet", text: "No measured run yet." }));
      });
    }
    return { refresh: function () {
      return api("/api/v1/sweeps").then(render).catch(banner);
    } };
  }

  function availClass(r) {
    if (r === null || r === undefined) return "";
    return r >= 0.999 ? "good" : r >= 0.99 ? "warn" : "bad";
  }

  function renderAlerts(box, alerts, withTarget) {
    box.textContent = "";
    if (!alerts || !alerts.length) {
      box.appendChild(el("p", { class: "quiet", text: "No alert is firing or pending." }));
      return;
    }
    var head = ["Severity", "Alert", withTarget ? "Target" : null, "State", "Since", "Summary", "Silence", "Links"]
      .filter(function (h) { return h !== null; });
    var tb = el("tbody");
    alerts.forEach(function (a) {
      var lab = a.labels || {};
      var key = [lab.provider, lab.model, lab.probe].join("/");
      var since = a.since ? el("span", { title: LV.fmtTime(a.since), text: LV.fmtAge(Date.now() / 1000 - a.since) + " ago" }) : "–";
      var hint = "llm-vitals silence add -c CONFIG --match rule=" + a.rule +
        (lab.provider ? " --match provider=" + lab.provider : "") + (lab.model ? " --match model=" + lab.model : "") +
        " --duration 1h --comment '…'";
      var silence = a.muted ? el("span", { class: "mini muted", text: a.muted })
        : a.state === "firing" ? el("details", { class: "hint" }, [el("summary", { text: "not silenced" }),
          el("code", { text: hint })]) : "–";
      var links = el("span", { class: "links" }, [
        a.runbook_url ? el("a", { href: a.runbook_url, text: "runbook ↗", rel: "noopener" }) : null,
        a.grafana_url ? el("a", { href: a.grafana_url, text: "Grafana ↗", rel: "noopener" }) : null]);
      var cells = [el("span", { class: "mini sev-" + a.severity, text: a.severity }), el("b", { text: a.rule }),
        withTarget ? targetLink(key) : null, stateBadge(a.state === "firing" && a.muted ? "silenced" : a.state),
        since, el("span", { class: "summary", text: a.summary + (a.reason ? " — last failure: " + a.reason : "") }),
        silence, links];
      tb.appendChild(el("tr", { "data-rule": a.rule, "data-alert-state": a.state, "data-muted": a.muted || "" },
        cells.filter(function (c) { return c !== null; }).map(function (c) {
          return el("td", null, [c]);
        })));
    });
    box.appendChild(el("table", { class: "alerts" }, [el("thead", null, [el("tr", null, head.map(function (h) {
      return el("th", { text: h });
    }))]), tb]));
  }

  // -- one target ------------------------------------------------------------------------
  function targetView() {
    var key = boot.target;
    app.appendChild(header("target"));
    app.appendChild(el("div", { id: "banner", class: "banner", hidden: "" }));
    var range = "24h";
    var title = el("div", { class: "title" }, [el("a", { href: "/", class: "back", text: "← all targets" }),
      el("h1", { text: key }), el("span", { id: "tstate" }), el("span", { id: "tlinks", class: "links" })]);
    var ranges = el("div", { class: "ranges", role: "group", "aria-label": "time range" },
      ["1h", "6h", "24h", "7d"].map(function (r) {
        return el("button", { "data-range": r, class: r === range ? "on" : null, text: r, onclick: function () {
          range = r;
          Array.prototype.forEach.call(ranges.children, function (b) { b.className = b.getAttribute("data-range") === r ? "on" : ""; });
          refreshHistory();
        } });
      }));
    app.appendChild(el("section", { class: "toolbar" }, [title, ranges]));
    var kpis = el("section", { class: "kpis", id: "kpis" });
    app.appendChild(kpis);
    app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Alerts on this target" }), el("div", { id: "alerts" })]));
    var boxes = {};
    function card(id, h, cls) {
      boxes[id] = el("div", { class: "chart", id: "chart-" + id });
      return el("section", { class: "card " + (cls || "") }, [el("h2", { text: h }), boxes[id]]);
    }
    app.appendChild(card("timeline", "TTFT and end-to-end latency, every probe (failed probes marked by outcome)"));
    app.appendChild(el("div", { class: "grid2" }, [card("dist", "TTFT distribution (ok probes)"),
      card("phases", "Where the time goes: median phase per time bucket")]));
    app.appendChild(card("tps", "Output tokens per second"));
    var errBox = el("div", { id: "errors" });
    app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Recent errors" }), errBox]));
    var sweepsBox = sweepsCard(key);
    var charts = [];

    function renderStatus(st) {
      meta(st);
      var t = st.targets.filter(function (x) { return x.target === key; })[0];
      if (!t) return;
      var s = document.getElementById("tstate");
      s.textContent = "";
      s.appendChild(stateBadge(t.state));
      var l = document.getElementById("tlinks");
      l.textContent = "";
      if (t.grafana_url) l.appendChild(el("a", { href: t.grafana_url, text: "Grafana ↗", rel: "noopener" }));
      var q1 = (t.quantiles.ttft || {})["1h"] || {}, e1 = (t.quantiles.e2e || {})["1h"] || {},
        tp = (t.quantiles.output_tps || {})["1h"] || {};
      var a24 = (t.availability || {})["24h"] || {}, a7 = (t.availability || {})["7d"] || {};
      kpis.textContent = "";
      [["Last probe", t.last ? LV.fmtAge(t.last_probe_age) + " ago" : "–", t.last ? t.last.outcome : "no probe yet"],
        ["Availability 24h", LV.fmtPct(a24.ratio), (a24.ok || 0) + " / " + (a24.probes || 0) + " ok"],
        ["Availability 7d", LV.fmtPct(a7.ratio), (a7.ok || 0) + " / " + (a7.probes || 0) + " ok"],
        ["TTFT p50 · p95 (1h)", LV.fmtDur(q1["0.5"]) + " · " + LV.fmtDur(q1["0.95"]), "p99 " + LV.fmtDur(q1["0.99"])],
        ["e2e p50 · p95 (1h)", LV.fmtDur(e1["0.5"]) + " · " + LV.fmtDur(e1["0.95"]), "p99 " + LV.fmtDur(e1["0.99"])],
        ["Tokens/s p50 (1h)", LV.fmtNum(tp["0.5"]), "probe every " + t.interval + " s"]
      ].forEach(function (k) {
        kpis.appendChild(el("div", { class: "kpi" }, [el("div", { class: "k", text: k[0] }),
          el("div", { class: "v", text: k[1] }), el("div", { class: "s", text: k[2] })]));
      });
      renderAlerts(document.getElementById("alerts"), t.alerts, false);
    }

    function renderHistory(h) {
      charts.forEach(function (c) { if (c) c.destroy(); });
      var p = h.probes;
      // failed probes are gaps in the tokens/s line (an outage is not a line across it)
      var tps = p.output_tps.map(function (v, i) { return p.outcome[i] === "ok" ? v : null; });
      var ttfts = p.ttft.filter(function (v, i) { return p.outcome[i] === "ok"; });
      var bins = LV.binCounts(ttfts, 40);
      charts = [LV.timeline(boxes.timeline, p, 280), LV.histogram(boxes.dist, bins.edges, bins.counts, "probes"),
        LV.phases(boxes.phases, p, 48), LV.line(boxes.tps, p.t, tps, "tokens/s", "#8250df")];
      var note = h.downsampled_bucket_seconds ? " (ok probes merged per " + h.downsampled_bucket_seconds +
        " s; failed probes shown one by one)" : "";
      boxes.timeline.setAttribute("data-points", String(p.t.length));
      boxes.timeline.parentNode.querySelector("h2").title = h.count + " probes in range" + note;
    }

    function renderErrors(e) {
      errBox.textContent = "";
      if (!e.errors.length) { errBox.appendChild(el("p", { class: "quiet", text: "No failed probe in this range." })); return; }
      var tb = el("tbody");
      e.errors.forEach(function (x) {
        tb.appendChild(el("tr", null, [el("td", { text: LV.fmtTime(x.t) }),
          el("td", null, [el("span", { class: "outcome bad", text: x.outcome })]),
          el("td", { text: x.status_code === null ? "–" : String(x.status_code) }),
          el("td", { class: "msg", text: x.error || "" }), el("td", { class: "rid", text: x.request_id || "" })]));
      });
      errBox.appendChild(el("table", { class: "errors" }, [el("thead", null, [el("tr", null,
        ["Time", "Outcome", "HTTP", "Error", "Request id"].map(function (h) { return el("th", { text: h }); }))]), tb]));
    }

    var q = "target=" + encodeURIComponent(key);
    function refreshStatus() {
      return api("/api/v1/status").then(function (st) { lastGood = st.now; banner(null); renderStatus(st); }).catch(banner);
    }
    function refreshHistory() {
      return Promise.all([api("/api/v1/history?metric=probes&since=" + range + "&" + q).then(renderHistory),
        api("/api/v1/history?metric=errors&since=" + range + "&" + q).then(renderErrors)]).catch(banner);
    }
    Promise.all([refreshStatus(), refreshHistory(), sweepsBox.refresh()]).then(ready);
    setInterval(refreshStatus, boot.refresh_seconds * 1000);
    setInterval(refreshHistory, 30000);
    setInterval(sweepsBox.refresh, 30000);
    window.addEventListener("resize", function () { refreshHistory(); });
  }

  // -- comparison -------------------------------------------------------------------------
  function compareView() {
    app.appendChild(header("compare"));
    app.appendChild(el("div", { id: "banner", class: "banner", hidden: "" }));
    var probeSel = el("select", { id: "probe", "aria-label": "probe profile" });
    var rangeSel = el("select", { id: "range", "aria-label": "time range" }, ["1h", "6h", "24h", "7d"].map(function (r) {
      return el("option", { value: r, text: "last " + r });
    }));
    rangeSel.value = "24h";
    app.appendChild(el("section", { class: "toolbar" }, [el("h1", { text: "Provider comparison" }),
      el("label", null, ["probe ", probeSel]), el("label", null, ["range ", rangeSel])]));
    var ttftBox = el("div", { class: "chart", id: "chart-compare-ttft" });
    var tpsBox = el("div", { class: "chart", id: "chart-compare-tps" });
    var table = el("div", { id: "compare-table" });
    app.appendChild(el("section", { class: "card" }, [el("h2", { text: "Same probe, every model" }), table]));
    app.appendChild(el("div", { class: "grid2" }, [
      el("section", { class: "card" }, [el("h2", { text: "TTFT p50 and p95" }), ttftBox]),
      el("section", { class: "card" }, [el("h2", { text: "Output tokens/s (p50)" }), tpsBox])]));
    var data = null, charts = [];

    function render() {
      if (!data) return;
      var probesSeen = {};
      data.summaries.forEach(function (s) { probesSeen[s.target.split("/")[2]] = true; });
      var names = Object.keys(probesSeen).sort();
      if (probeSel.options.length !== names.length) {
        var keep = probeSel.value;
        probeSel.textContent = "";
        names.forEach(function (n) { probeSel.appendChild(el("option", { value: n, text: n })); });
        if (keep && probesSeen[keep]) probeSel.value = keep;
      }
      var rows = data.summaries.filter(function (s) { return s.target.split("/")[2] === probeSel.value; })
        .sort(function (a, b) { return (a.ttft.p50 || 1e9) - (b.ttft.p50 || 1e9); });
      table.textContent = "";
      var tb = el("tbody");
      rows.forEach(function (s) {
        tb.appendChild(el("tr", { "data-target": s.target }, [el("td", null, [targetLink(s.target)]),
          el("td", { class: "num", text: String(s.probes) }),
          el("td", { class: "num " + availClass(s.availability), text: LV.fmtPct(s.availability) }),
          el("td", { class: "num", text: LV.fmtDur(s.ttft.p50) }), el("td", { class: "num", text: LV.fmtDur(s.ttft.p95) }),
          el("td", { class: "num", text: LV.fmtDur(s.ttft.p99) }), el("td", { class: "num", text: LV.fmtDur(s.e2e.p95) }),
          el("td", { class: "num", text: LV.fmtNum(s.output_tps.p50) }),
          el("td", { class: "num", text: LV.fmtUsd(s.cost_per_1k_probes_usd) })]));
      });
      table.appendChild(el("table", { class: "compare" }, [el("thead", null, [el("tr", null,
        ["Target", "Probes", "Availability", "TTFT p50", "TTFT p95", "TTFT p99", "e2e p95", "Tokens/s p50",
          "Cost / 1k probes"].map(function (h) { return el("th", { text: h }); }))]), tb]));
      charts.forEach(function (c) { if (c) c.destroy(); });
      // the model's name says which bar is which unless two providers serve the same model
      var models = rows.map(function (s) { return s.target.split("/")[1]; });
      var labels = rows.map(function (s, i) {
        return models.indexOf(models[i]) !== models.lastIndexOf(models[i]) ? s.target.split("/").slice(0, 2).join("/") : models[i];
      });
      charts = [
        LV.bars(ttftBox, labels, [{ label: "p50", color: "#0969da", values: rows.map(function (s) { return s.ttft.p50; }) },
          { label: "p95", color: "#fb8f44", values: rows.map(function (s) { return s.ttft.p95; }) }], LV.fmtDur, 280),
        LV.bars(tpsBox, labels, [{ label: "tokens/s p50", color: "#8250df",
          values: rows.map(function (s) { return s.output_tps.p50; }) }], null, 280)];
    }
    probeSel.addEventListener("change", render);
    function refresh() {
      return api("/api/v1/history?metric=summary&since=" + rangeSel.value).then(function (d) {
        data = d; lastGood = d.until; banner(null); render();
      }).catch(banner);
    }
    rangeSel.addEventListener("change", refresh);
    api("/api/v1/status").then(meta).catch(banner);
    refresh().then(ready);
    setInterval(refresh, 60000);
  }

  function ready() { root.setAttribute("data-ready", "1"); }

  if (boot.view === "target") targetView();
  else if (boot.view === "compare") compareView();
  else if (boot.view === "unknown") {
    app.appendChild(header(""));
    app.appendChild(el("section", { class: "card" }, [el("h1", { text: "Unknown target" }),
      el("p", { text: boot.target + " is not a configured target. " }), el("a", { href: "/", text: "← all targets" })]));
    ready();
  } else overview();
})();
