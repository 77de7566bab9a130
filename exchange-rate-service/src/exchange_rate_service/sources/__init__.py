"""Where rates come from: the ECB reference-rate XML feed and the ECB history bundled in a package."""
