"""Brokers and databases calstream starts itself, on free ports of 127.0.0.1.

- :mod:`calstream.servers.embedded`: amqtt inside the process (the demo's broker);
- :mod:`calstream.servers.mosquitto`: Debian's mosquitto with the deploy tuning (the broker
  `calstream run` starts when none is configured, and the benchmarks');
- :mod:`calstream.servers.influxdb`: Debian's InfluxDB 1.x and VictoriaMetrics (the sink
  benchmark);
- :mod:`calstream.servers.base`: ``free_port`` and the process lifecycle they share.

Servers that only the tests start (PostgreSQL) live in ``tests/servers/``.
"""
