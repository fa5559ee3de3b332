"""Building the platform's parts from settings: the composition root's small factories."""

from __future__ import annotations

from typing import Any

from calstream.runtime.pipeline import Pipeline
from calstream.settings import Settings
from ingest.admission import Admission, AdmissionPolicy
from ingest.subscriber import DurableSubscriber
from metrology.conformity import DecisionRule
from metrology.fleet import Fleet
from metrology.wire import READINGS_SUBSCRIPTION
from storage.contract import Store
from storage.select import open_store
from stream_processors.policy import ProcessingPolicy
from stream_processors.runner import FleetProcessor


def policy_for(settings: Settings) -> ProcessingPolicy:
    """The processing policy the settings describe (one for the whole fleet for now)."""
    return ProcessingPolicy(
        decision_rule=DecisionRule.parse(settings.decision_rule),
        due_soon_days=settings.due_soon_days,
        offline_after_periods=settings.offline_after_periods,
        page_hinkley=settings.page_hinkley,
    )


def store_for(settings: Settings, store_url: str | None = None) -> Store:
    """The store the settings name (or ``store_url``), opened and migrated."""
    return open_store(
        store_url or settings.store_url, settings.registry, work_dir=settings.work_dir
    )


def admission_for(fleet: Fleet, settings: Settings) -> Admission:
    return Admission(
        fleet.instruments,
        AdmissionPolicy(max_future_s=settings.max_future_s, max_age_days=settings.max_age_days),
    )


def subscriber_for(
    settings: Settings, host: str, port: int, client_id: str, queue_size: int = 2_000
) -> DurableSubscriber:
    """A started durable subscription to every readings topic, with the configured credentials."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    subscriber = DurableSubscriber(
        host, port, client_id=client_id, topic=READINGS_SUBSCRIPTION, queue_size=queue_size,
        username=settings.mqtt_username, password=password,
    )  # fmt: skip
    subscriber.start()
    return subscriber


def pipeline_for(
    fleet: Fleet,
    settings: Settings,
    store: Store,
    subscriber: DurableSubscriber,
    processor: FleetProcessor | None = None,
    **options: Any,
) -> Pipeline:
    """The embedded pipeline for ``fleet``: admission, processing and the store, as configured."""
    processor = processor or FleetProcessor(fleet, policy_for(settings))
    return Pipeline(subscriber, admission_for(fleet, settings), processor, store, **options)
