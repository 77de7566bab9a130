"""Root conftest: the devstack fixtures (real PostgreSQL, Redis, Kafka, Stripe, SMTP) everywhere."""

pytest_plugins = ["paygate_devstack.pytest_plugin"]
