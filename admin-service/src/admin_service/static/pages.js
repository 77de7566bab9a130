// Small behaviours of the console and dashboard: confirmations and self-refreshing panels.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  cells.forEach((text) => tr.appendChild(cell(text)));
  return tr;
}

async function refreshHealth(panel) {
  const response = await fetch(panel.dataset.source, { credentials: "same-origin" });
  if (!response.ok) return;
  const health = await response.json();
  const overall = document.getElementById("overall");
  overall.textContent = health.status;
  overall.className = `badge ${health.status}`;
  const services = document.getElementById("health-services");
  services.replaceChildren(...health.services.map((s) => {
    const tr = row([s.name, s.status, Object.entries(s.checks).map(([k, v]) => `${k}: ${v}`).join(" ")], s.status === "ready" ? "ok" : "down");
    tr.dataset.service = s.name;
    tr.children[1].className = "status";
    return tr;
  }));
  document.getElementById("health-consumers").replaceChildren(
    ...health.consumers.map((c) => row([c.group, c.topic, c.lag === null ? "unknown" : String(c.lag)])));
  document.getElementById("health-queues").replaceChildren(
    ...health.dead_letters.map((d) => row([d.topic, String(d.depth)])),
    ...health.outbox.map((o) => row([`outbox of ${o.service}`, String(o.backlog)])));
}

async function refreshTable(panel) {
  const response = await fetch(panel.dataset.refresh, { credentials: "same-origin" });
  if (response.ok) panel.innerHTML = await response.text(); // our own server-rendered fragment
}

document.addEventListener("DOMContentLoaded", () => {
  const health = document.getElementById("health");
  if (health) setInterval(() => refreshHealth(health).catch(() => {}), 3000);
  document.querySelectorAll("[data-refresh]").forEach((panel) => {
    setInterval(() => refreshTable(panel).catch(() => {}), 3000);
  });
});
