"""Order rules: the status state machine, placing orders, applying payment events, expiry."""
