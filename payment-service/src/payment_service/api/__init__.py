"""HTTP endpoints: payment reads for owners and admins, and the Stripe webhook."""
