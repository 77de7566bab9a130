/*
 * paygate checkout button, v1: opens paygate's hosted checkout for a payment, in an overlay on
 * the merchant's page or by redirecting to it, and reports the outcome. No dependencies.
 *
 *   <script src="https://pay.example.com/checkout/js/v1/button.js"></script>
 *   <button data-paygate-checkout="https://pay.example.com/checkout/PAYMENT_ID">Pay</button>
 *   <script>
 *     document.querySelector("[data-paygate-checkout]").addEventListener("paygate:checkout",
 *       (e) => console.log(e.detail));   // {event: "completed"|"closed", payment_id, status}
 *   </script>
 *
 * or from code: PaygateCheckout.open(url, {mode: "overlay" | "redirect", onComplete, onClose}).
 * The URL is `next_action.redirect_to_url.url` of a payment created with `checkout: true`.
 * Messages are accepted only from paygate's own origin (where this script came from) and only
 * from the overlay's own frame; the outcome is a hint for the page — confirm it on your server
 * with GET /payments/{id} before shipping anything.
 */
(function () {
  "use strict";
  if (window.PaygateCheckout) return;

  var script = document.currentScript;
  var PAYGATE_ORIGIN = new URL(script.src).origin;
  var current = null;

  function checkoutUrl(url) {
    var parsed = new URL(url, PAYGATE_ORIGIN);
    // Only paygate's own checkout pages: the button is no way to frame or open anything else.
    if (parsed.origin !== PAYGATE_ORIGIN || !/^\/checkout\/[0-9a-f-]{36}$/i.test(parsed.pathname)) {
      throw new Error("PaygateCheckout: not a paygate checkout URL: " + url);
    }
    return parsed.href;
  }

  function close() {
    if (!current) return;
    window.removeEventListener("message", current.listener);
    document.removeEventListener("keydown", current.onKey);
    current.overlay.remove();
    current = null;
  }

  function openOverlay(url, options) {
    close();
    var overlay = document.createElement("div");
    overlay.setAttribute("data-paygate-overlay", "");
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "Checkout");
    Object.assign(overlay.style, {
      position: "fixed", inset: "0", zIndex: "2147483647", display: "flex",
      alignItems: "center", justifyContent: "center", background: "rgba(20, 24, 33, 0.55)",
    });
    var frame = document.createElement("iframe");
    frame.src = url;
    frame.title = "Checkout";
    frame.setAttribute("allow", "payment");
    Object.assign(frame.style, {
      width: "min(480px, 100vw)", height: "min(680px, 100vh)", border: "0",
      borderRadius: "10px", background: "#fff", boxShadow: "0 10px 40px rgba(0,0,0,.3)",
    });
    var closer = document.createElement("button");
    closer.type = "button";
    closer.textContent = "\u00d7";
    closer.setAttribute("aria-label", "Close checkout");
    Object.assign(closer.style, {
      position: "absolute", top: "12px", right: "16px", font: "28px/1 system-ui, sans-serif",
      color: "#fff", background: "transparent", border: "0", cursor: "pointer",
    });
    overlay.appendChild(frame);
    overlay.appendChild(closer);

    var outcome = null;
    var report = function (detail) {
      if (detail.event === "completed" && options.onComplete) options.onComplete(detail);
      if (detail.event === "closed" && options.onClose) options.onClose(detail);
      if (options.target) {
        options.target.dispatchEvent(new CustomEvent("paygate:checkout", { detail: detail }));
      }
    };
    var closed = function () {
      close();
      report({
        event: "closed",
        payment_id: outcome ? outcome.payment_id : null,
        status: outcome ? outcome.status : null,
      });
    };
    var listener = function (event) {
      // Only paygate, and only this overlay's own frame, may speak for the checkout.
      if (event.origin !== PAYGATE_ORIGIN || event.source !== frame.contentWindow) return;
      var data = event.data;
      if (!data || data.source !== "paygate-checkout" || data.version !== 1) return;
      if (data.event === "completed") {
        // The result page stays visible; the overlay closes when the customer goes back.
        outcome = { event: "completed", payment_id: data.payment_id, status: data.status };
        report(outcome);
      } else if (data.event === "closed") {
        closed();
      } else if (data.event === "redirect" && typeof data.url === "string" && /^https?:/.test(data.url)) {
        // A provider's own page (PayPal, SSLCommerz) does not open in a frame.
        window.location.assign(data.url);
      }
    };
    var onKey = function (event) {
      if (event.key === "Escape") closed();
    };
    closer.addEventListener("click", closed);
    window.addEventListener("message", listener);
    document.addEventListener("keydown", onKey);
    document.body.appendChild(overlay);
    current = { overlay: overlay, listener: listener, onKey: onKey };
    frame.focus();
  }

  function open(url, options) {
    options = options || {};
    var href = checkoutUrl(url);
    if (options.mode === "redirect") {
      window.location.assign(href);
      return;
    }
    openOverlay(href, options);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-paygate-checkout]");
    if (!button) return;
    event.preventDefault();
    open(button.getAttribute("data-paygate-checkout"), {
      mode: button.getAttribute("data-paygate-mode") || "overlay",
      target: button,
    });
  });

  window.PaygateCheckout = { version: 1, open: open, close: close };
})();
