// The result page: tells the merchant's page the outcome when it is shown in their overlay.
"use strict";

(() => {
  const result = document.getElementById("result");
  if (!result || window.parent === window) return;
  const merchantOrigin = result.dataset.merchantOrigin;
  if (!merchantOrigin) return;
  const message = (event) => ({
    source: "paygate-checkout",
    version: 1,
    event,
    payment_id: result.dataset.paymentId,
    status: result.dataset.status,
  });
  // Only the merchant the payment returns to receives it (postMessage's target origin).
  window.parent.postMessage(message("completed"), merchantOrigin);
  const back = document.getElementById("return-link");
  if (back) {
    back.addEventListener("click", (event) => {
      event.preventDefault();
      window.parent.postMessage(message("closed"), merchantOrigin);
    });
  }
})();
