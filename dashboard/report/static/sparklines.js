// Draws the report's sparklines (dashboard/report/figures.py) with uPlot: one per element
// [data-spark=N], from the JSON array in #sparks. No axes, legend or cursor: the table beside it
// holds the figures. The baseline's days are grey, the period's red (worse) or green (better).
(function () {
  "use strict";
  const sparks = JSON.parse(document.getElementById("sparks").textContent);
  const WIDTH = 140, HEIGHT = 32;
  for (const el of document.querySelectorAll("[data-spark]")) {
    const spark = sparks[Number(el.dataset.spark)];
    if (!spark) continue;
    const xs = spark.values.map((v, i) => i);
    // The two halves share the day where they meet, so the line is unbroken.
    const before = spark.values.map((v, i) => (i < spark.split ? v : null));
    const after = spark.values.map((v, i) => (i >= spark.split - 1 ? v : null));
    const line = (stroke) => ({ stroke, width: 1.5, spanGaps: false, points: { show: false } });
    try {
      new uPlot({
        width: WIDTH, height: HEIGHT, legend: { show: false }, cursor: { show: false },
        select: { show: false }, axes: [{ show: false }, { show: false }],
        scales: { x: { time: false }, y: { range: (u, min, max) => (min === max ? [0, max * 2 || 1] : [0, max * 1.05]) } },
        series: [{}, line("#9e9e9e"), line(spark.worse ? "#c62828" : "#2e7d32")],
      }, [xs, before, after], el);
    } catch (err) {
      el.textContent = "–";
    }
  }
  requestAnimationFrame(() => { document.body.dataset.sparks = "1"; });
})();
