
// --- paygate devstack addition (appended to localstripe's Stripe.js stand-in) ---------------
// Real Stripe.js tokenises a card with `stripe.createPaymentMethod(...)`, posting the card to
// Stripe's /v1/payment_methods with the publishable key; localstripe's stand-in leaves that
// function empty. This fills it in the same shape: the card goes to the Stripe stand-in only,
// and the page gets `{paymentMethod: {id: "pm_…", …}}` or `{error: {…}}` back.
(function () {
  const makeStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = makeStripe(apiKey);
    stripe.createPaymentMethod = async (typeOrData, maybeElement) => {
      // Both signatures: createPaymentMethod({type: 'card', card: element}) and the older
      // createPaymentMethod('card', element).
      const element = typeof typeOrData === 'string' ? maybeElement : typeOrData.card;
      const card = element && element.value && element.value.card;
      if (!card || !card.number) {
        return {error: {type: 'validation_error', code: 'incomplete_number',
                        message: 'Your card number is incomplete.'}};
      }
      const body = new URLSearchParams({
        type: 'card',
        key: apiKey,
        payment_user_agent: 'localstripe',
        'card[number]': card.number,
        'card[exp_month]': card.exp_month,
        'card[exp_year]': card.exp_year,
        'card[cvc]': card.cvc,
      });
      try {
        const response = await fetch(`${LOCALSTRIPE_BASE_API}/v1/payment_methods`, {
          method: 'POST',
          headers: {'Content-Type': 'application/x-www-form-urlencoded'},
          body,
        });
        const res = await response.json().catch(() => ({}));
        if (response.status !== 200 || res.error) {
          return {error: res.error || {type: 'card_error',
                                       message: 'Your card details are not valid.'}};
        }
        return {paymentMethod: res};
      } catch (err) {
        return {error: {type: 'api_connection_error', message: String(err)}};
      }
    };
    return stripe;
  };
})();
