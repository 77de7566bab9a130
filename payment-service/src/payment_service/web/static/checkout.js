// The hosted checkout page: tokenise the card with Stripe.js, post only the pm_… to paygate,
// finish 3-D Secure or follow the provider's redirect, and end on the result page.
"use strict";

(() => {
  const root = document.getElementById("checkout");
  if (!root) return;
  const { base, paymentId, token, merchantOrigin, stripeKey } = root.dataset;
  const embedded = window.parent !== window;
  const statusLine = document.getElementById("status");
  const errorLine = document.getElementById("error");
  const form = document.getElementById("card-form");
  const payButton = document.getElementById("pay-button");
  const providerButtons = Array.from(document.querySelectorAll("button[data-provider]"));

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function say(text) {
    statusLine.textContent = text;
  }

  function fail(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
    say("");
  }

  function busy(on) {
    [payButton, ...providerButtons].forEach((b) => { if (b) b.disabled = on; });
    if (on) errorLine.hidden = true;
  }

  // The page's own calls: same origin, the signed page token, no cookies.
  async function call(path, body) {
    const response = await fetch(`${base}/${paymentId}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json", "X-Checkout-Token": token },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    const answer = await response.json().catch(() => ({}));
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    return { ok: response.ok, status: response.status, body: answer, retryAfter };
  }

  function toMerchant(event, detail) {
    if (embedded && merchantOrigin) {
      window.parent.postMessage(
        { source: "paygate-checkout", version: 1, event, payment_id: paymentId, ...detail },
        merchantOrigin,
      );
    }
  }

  let stripe = null;
  let cardElement = null;
  if (stripeKey && form) {
    if (typeof window.Stripe !== "function") {
      fail("The card form could not load. Reload the page.");
    } else {
      stripe = window.Stripe(stripeKey);
      cardElement = stripe.elements().create("card");
      cardElement.mount("#card-element");
    }
  }

  // After the choice: wait for the provider's answer, authenticate if asked, then the result.
  async function follow() {
    let authenticated = false;
    // Most payments settle in a second or two; back off after that (the gateway rate-limits
    // anonymous callers per IP, and a 429 says when to come back).
    let pause = 500;
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      const { ok, status, body, retryAfter } = await call("/state");
      if (status === 429) {
        await sleep(Math.max(retryAfter * 1000, pause));
        continue;
      }
      if (ok && body.done) {
        window.location.assign(body.complete_url);
        return;
      }
      const action = ok ? body.action : null;
      if (action && action.type === "redirect") {
        say("Taking you to the provider…");
        if (embedded) {
          // A provider's page will not open inside a frame: the merchant's page navigates.
          toMerchant("redirect", { url: action.url });
        } else {
          window.location.assign(action.url);
        }
        return;
      }
      if (action && action.type === "stripe_authentication" && !authenticated) {
        authenticated = true;
        say("Confirm the payment with your bank…");
        await stripe.confirmCardPayment(action.client_secret);
        say("Checking with your bank…");
        await call("/authenticated", {});
        continue;
      }
      await sleep(pause);
      pause = Math.min(pause * 1.5, 3000);
    }
    fail("This is taking longer than it should. Refresh the page to see where it stands.");
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!stripe) return;
      busy(true);
      say("Checking your card…");
      const { paymentMethod, error } = await stripe.createPaymentMethod({
        type: "card",
        card: cardElement,
      });
      if (error || !paymentMethod) {
        busy(false);
        fail((error && error.message) || "Your card could not be read.");
        return;
      }
      say("Paying…");
      const answer = await call("/pay", { payment_method: paymentMethod.id });
      if (!answer.ok) {
        busy(false);
        fail(answer.body.detail || "The payment could not be started.");
        return;
      }
      await follow();
    });
  }

  providerButtons.forEach((button) => {
    button.addEventListener("click", async () => {
      busy(true);
      say("Starting…");
      const answer = await call("/pay", { provider: button.dataset.provider });
      if (!answer.ok) {
        busy(false);
        fail(answer.body.detail || "The payment could not be started.");
        return;
      }
      await follow();
    });
  });

  const cancel = document.getElementById("cancel-link");
  if (cancel && embedded && merchantOrigin) {
    cancel.addEventListener("click", (event) => {
      event.preventDefault();
      toMerchant("closed", { status: "cancelled_by_customer" });
    });
  }

  // Opened again while the payment is under way (a reload, a return from 3-D Secure).
  if (root.dataset.open !== "true" && root.dataset.expired !== "true") follow();
})();
