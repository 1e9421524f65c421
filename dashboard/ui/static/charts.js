// Draws the charts of dashboard/ui/plots.py with uPlot, in the frame plots.py writes. The spec is
// JSON in the script element #spec; every text from it goes through textContent (uPlot's titles and
// legend do the same), so a name or a query's text is shown as written, never as markup.
(function () {
  "use strict";
  const spec = JSON.parse(document.getElementById("spec").textContent);
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const HEIGHT = spec.height;
  const grid = document.getElementById("grid");
  grid.style.gridTemplateColumns = `repeat(${spec.columns}, minmax(0, 1fr))`;
  const plots = [];

  function text(tag, cls, content) {
    const el = document.createElement(tag);
    el.className = cls;
    el.textContent = content;
    return el;
  }

  function number(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1000) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
    if (a >= 10) return v.toFixed(1);
    if (a >= 1 || a === 0) return v.toFixed(2);
    return v.toPrecision(3);
  }

  function tick(v) {
    return Number(v.toPrecision(6)).toLocaleString("en-US", { maximumFractionDigits: 6 });
  }

  // Time ticks on a 24-hour clock, the date under the first tick of each day:
  // [tick step (s), label, label on a new year, on a new month, on a new day, ..., mode 1].
  const TIME_TICKS = [
    [86400 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [86400 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [86400, "{MMM} {D}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MMM} {D}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MMM} {D}", null, null, null, 1],
    [1, "{HH}:{mm}:{ss}", "\n{YYYY}-{MM}-{DD}", null, "\n{MMM} {D}", null, null, null, 1],
  ];

  function alpha(color, a) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }

  // Stacked areas: each series drawn as the running total of the ones before it, filled down to
  // the one below (a band); the legend shows the series' own value. At another series' time (an
  // undefined after the join) a series counts with its last value; a time where no series has a
  // value stays a gap.
  function held(row) {
    let last;
    return row.map((v) => (v === undefined ? last : (last = v)));
  }

  function stacked(rows) {
    const totals = rows[0].map(() => null);
    return rows.map(held).map((row) => row.map((v, i) => {
      if (v === null || v === undefined) return totals[i];
      totals[i] = (totals[i] || 0) + v;
      return totals[i];
    }));
  }

  // Never an empty range: uPlot would loop on its ticks when min == max. A flat zero is 0..1.
  function widen(low, high) {
    if (!Number.isFinite(low) || !Number.isFinite(high)) return [0, 1];
    if (high > low) return [low, high];
    if (low === 0) return [0, 1];
    const pad = Math.abs(low) * 0.05;
    return [low - pad, high + pad];
  }

  function yRange(chart, scale) {
    if (scale === "y" && chart.y_min !== null && chart.y_max !== null) return widen(chart.y_min, chart.y_max);
    return (u, min, max) => {
      if (min === null || max === null) return [0, 1];
      const low = Math.min(0, min);
      return widen(low, max + (max - low) * 0.05);
    };
  }

  // The x range is the page's window, unless the user dragged over a part of it: a zoom, which the
  // cursor sync makes on every chart of the frame at once. A double-click gives them the window back.
  let zoomed = false;

  function xRange(u, min, max) {
    return zoomed || !spec.window ? widen(min, max) : spec.window;
  }

  function zoom(u) {
    const { left, width } = u.select;
    if (width > 2) {
      zoomed = true;
      u.setScale("x", { min: u.posToVal(left, "x"), max: u.posToVal(left + width, "x") });
    }
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  }

  function unzoom() {
    zoomed = false;
    for (const [u] of plots) u.setScale("x", { min: spec.window[0], max: spec.window[1] });
  }

  function options(chart, width, raw) {
    const area = chart.kind === "area";
    const right = chart.series.some((s) => s.right);
    const series = [{ value: (u, ts) => (ts === null ? "time (UTC)" : timeLabel(ts)) }];
    chart.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: color,
        width: s.dash ? 1 : 1.5,
        dash: s.dash ? [6, 4] : undefined,
        fill: area ? alpha(color, 0.55) : undefined,
        scale: s.right ? "y2" : "y",
        spanGaps: false,
        points: { show: raw[0].length < 60 && !s.dash, size: 5 },
        value: (u, v, si, idx) => number(idx === null || raw[i][idx] === undefined ? null : raw[i][idx]),
      });
    });
    const scales = {
      x: { time: true, range: xRange },
      y: { range: yRange(chart, "y") },
    };
    const axes = [
      { space: 70, values: TIME_TICKS },
      { label: chart.unit, labelSize: 18, size: 68, values: (u, vals) => vals.map(tick) },
    ];
    if (right) {
      scales.y2 = { range: yRange(chart, "y2") };
      axes.push({ scale: "y2", side: 1, label: chart.right_unit, labelSize: 18, size: 68,
        grid: { show: false }, values: (u, vals) => vals.map(tick) });
    }
    const bands = area ? chart.series.slice(1).map((s, i) => ({ series: [i + 2, i + 1] })) : [];
    return {
      width, height: HEIGHT, series, scales, axes, bands,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      cursor: { sync: { key: "observatory" }, drag: { x: true, y: false, setScale: false } },
      hooks: { setSelect: [zoom], ready: [(u) => spec.window && u.over.addEventListener("dblclick", unzoom)] },
      legend: { live: true },
    };
  }

  function timeLabel(ts) {
    return new Date(ts * 1e3).toISOString().slice(0, 16).replace("T", " ");
  }

  function bars(chart, cell) {
    const values = chart.series[0].values;
    const top = Math.max(...values.map((v) => v || 0), 1e-12);
    chart.labels.forEach((label, i) => {
      const row = document.createElement("div");
      row.className = "bar-row";
      row.appendChild(text("div", "bar-label", label));
      const track = document.createElement("div");
      track.className = "bar-track";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${(100 * (values[i] || 0)) / top}%`;
      track.appendChild(bar);
      row.appendChild(track);
      row.appendChild(text("div", "bar-value", `${number(values[i])} ${chart.unit} · ${chart.notes[i] || ""}`));
      cell.appendChild(row);
    });
  }

  function draw(chart, cell) {
    if (chart.title) cell.appendChild(text("div", "title", chart.title));
    if (!chart.series.length) {
      cell.appendChild(text("div", "empty", "no data in this window"));
    } else if (chart.kind === "bars") {
      bars(chart, cell);
    } else {
      // Each series on its own times: at another series' time a value is undefined, which uPlot
      // draws through; a null (a bucket without a value) stays a gap.
      let times;  // x: null is "the same times as the series before" (plots.py)
      const tables = chart.series.map((s) => [(times = s.x || times), s.values]);
      const [xs, ...raw] = uPlot.join(tables);
      const data = [xs, ...(chart.kind === "area" ? stacked(raw) : raw)];
      plots.push([new uPlot(options(chart, cell.clientWidth, raw), data, cell), cell]);
    }
  }

  try {
    for (const chart of spec.charts) {
      const cell = document.createElement("div");
      cell.className = "cell";
      grid.appendChild(cell);
      try {
        draw(chart, cell);
      } catch (err) {  // one chart that cannot be drawn says so; the others still are
        cell.appendChild(text("div", "empty", `this chart could not be drawn: ${err}`));
      }
    }
  } finally {
    // uPlot draws in a microtask after this script; an animation frame comes after those.
    requestAnimationFrame(finished);
  }
  // A chart that fails while drawing (after its try above) says so, and the frame still finishes.
  window.addEventListener("error", (event) => {
    grid.appendChild(text("div", "empty", `a chart could not be drawn: ${event.message}`));
  });
  window.uplots = plots.map(([u]) => u);  // for the tests: each chart's joined data and scales

  window.addEventListener("resize", () => {
    for (const [u, cell] of plots) u.setSize({ width: cell.clientWidth, height: HEIGHT });
  });
  // What a test or the page benchmark checks: this frame has drawn what its element now holds (a
  // rerun replaces the srcdoc, and until the new document loads the old one is still there).
  function finished() {
    window.drawnFor = window.frameElement ? window.frameElement.getAttribute("srcdoc") : null;
    document.body.dataset.ready = "1";
  }
})();
