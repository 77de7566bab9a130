// Draws the overview charts from the summary the page carries (Chart.js, vendored).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const rows = JSON.parse(document.getElementById("summary-data").textContent || "[]");
  const periods = [...new Set(rows.map((r) => r.period))].sort();
  const currencies = [...new Set(rows.map((r) => r.currency))].sort();
  const series = (field) => currencies.map((currency) => ({
    label: currency.toUpperCase(),
    data: periods.map((p) => {
      const r = rows.find((x) => x.period === p && x.currency === currency);
      return r ? Number(r[field] || 0) : 0;
    }),
  }));
  const successRate = [{
    label: "success rate %",
    data: periods.map((p) => {
      const day = rows.filter((r) => r.period === p);
      const total = day.reduce((n, r) => n + Number(r.count || 0) + Number(r.failed || 0), 0);
      const ok = day.reduce((n, r) => n + Number(r.count || 0), 0);
      return total ? Math.round((ok / total) * 1000) / 10 : 0;
    }),
  }];
  const draw = (id, type, datasets) => {
    const canvas = document.getElementById(id);
    const chart = new window.Chart(canvas, { type, data: { labels: periods, datasets }, options: { animation: false, responsive: true } });
    canvas.dataset.drawn = String(chart.data.datasets.reduce((n, d) => n + d.data.length, 0));
  };
  draw("volume-chart", "bar", series("volume"));
  draw("success-chart", "line", successRate);
  draw("refunds-chart", "bar", series("refunds"));
});
