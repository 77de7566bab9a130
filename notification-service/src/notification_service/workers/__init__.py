"""Background loops: the merchant webhook sender."""
