"""paygate payment-service: charges orders through provider connectors without ever charging twice."""
