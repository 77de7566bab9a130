"""paygate's shared library: the spine every service is built on."""
