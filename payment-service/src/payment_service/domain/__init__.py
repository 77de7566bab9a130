"""Payment rules: the state machine, the executor that charges, reconciliation, webhooks."""
