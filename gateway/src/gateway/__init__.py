"""paygate gateway: the one public entry point in front of every service."""
