"""Rules: which payment events become notifications, rendering, delivery and replay."""
