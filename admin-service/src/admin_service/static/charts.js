// Draws the overview charts from the analytics the page carries (Chart.js, vendored).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const data = JSON.parse(document.getElementById("chart-data").textContent || "{}");
  const periods = data.periods || [];
  const perCurrency = (byCurrency) => Object.keys(byCurrency || {}).sort().map((currency) => ({
    label: currency.toUpperCase(),
    data: byCurrency[currency],
  }));
  const draw = (id, type, datasets, options) => {
    const canvas = document.getElementById(id);
    const chart = new window.Chart(canvas, {
      type,
      data: { labels: periods, datasets },
      options: { animation: false, responsive: true, ...options },
    });
    // for people and tests alike: how many points the chart holds
    canvas.dataset.points = String(chart.data.datasets.reduce((n, d) => n + d.data.length, 0));
  };
  draw("volume-chart", "bar", perCurrency(data.volume));
  draw("success-chart", "line", [{ label: "success rate %", data: data.success_rate || [], spanGaps: true }],
    { scales: { y: { min: 0, max: 100 } } });
  draw("refunds-chart", "bar", perCurrency(data.refunds));
});
