"""`calstream detect-bench`: drift-detection quality against the simulator's ground truth.

- :mod:`~calstream.evaluation.detection.run`: simulate seeds and run them through `step`;
- scoring against the truth: :mod:`edge_sim.scoring` (shared with the demo's summary);
- :mod:`~calstream.evaluation.detection.goals`: calstream's goals beside the figures;
- :mod:`~calstream.evaluation.detection.report`: the figures as tables.
"""
