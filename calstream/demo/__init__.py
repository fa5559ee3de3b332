"""The demo: a simulated fleet through the whole platform, and the simulated gateways alone."""
