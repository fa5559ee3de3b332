"""A fleet simulator that behaves like real edge gateways.

Generate a fleet description (:mod:`edge_sim.fleetgen`, or ``python -m edge_sim.fleetgen``),
simulate its instruments over a window with realistic drift physics and a known ground truth
(:class:`FleetSimulator`, :class:`GroundTruth`), and publish the gateways' batches to an MQTT
broker at QoS 1 with a bounded number of unacknowledged messages (:class:`GatewayPublisher`).
"""

from edge_sim.behaviour import Behaviour
from edge_sim.errors import BackpressureTimeout, ConnectError, EdgeSimError, PublishError
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from edge_sim.truth import GroundTruth, InstrumentTruth, read_truth, write_truth

__all__ = [
    "BackpressureTimeout",
    "Behaviour",
    "ConnectError",
    "EdgeSimError",
    "FleetSimulator",
    "GatewayBatch",
    "GatewayPublisher",
    "GroundTruth",
    "InstrumentTruth",
    "PublishError",
    "read_truth",
    "write_truth",
]
