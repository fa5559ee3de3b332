"""Benchmarks: commands that print figures beside a baseline measured in the same run.

- :mod:`~calstream.evaluation.throughput`: `calstream bench` (readings/s beside the raw
  broker-to-subscriber rate);
- :mod:`~calstream.evaluation.soak`: `calstream soak` (memory and latency at half capacity);
- :mod:`~calstream.evaluation.detection`: `calstream detect-bench` (detection quality);
- :mod:`~calstream.evaluation.faust_bench`, :mod:`~calstream.evaluation.sink_bench`,
  :mod:`~calstream.evaluation.sqlite_bench`, :mod:`~calstream.evaluation.simulator_bench`:
  ``python -m`` commands for the Faust path, the InfluxDB sink, the SQLite store and the
  simulator.
"""
