"""calstream's one settings object: environment variables (``CALSTREAM_*``) or one TOML file.

Precedence, highest first: command-line options, environment variables, the file named by
``CALSTREAM_CONFIG`` (TOML, same keys in lower case), defaults. The defaults run on one machine
with no set-up beyond Debian's mosquitto: `calstream run` starts the broker itself (its own
process, persistence in the work folder) and writes a SQLite store in ``./calstream-work``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from metrology.conformity import DecisionRule
from storage.select import SQLITE_PREFIX, check_registry_url, store_kind


def example_fleet_path() -> Path:
    """The example fleet shipped with calstream."""
    return Path(str(resources.files("calstream") / "data" / "fleet.yaml"))


class Settings(BaseSettings):
    """Every option names its environment variable: ``CALSTREAM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CALSTREAM_", extra="ignore")

    broker: str | None = Field(
        default=None,
        description="MQTT broker URL mqtt://host:port; unset: `calstream run` starts its own "
        "(CALSTREAM_EMBEDDED_BROKER)",
    )
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    client_id: str = Field(
        default="calstream-pipeline", description="fixed MQTT client id (durable session)"
    )
    embedded_broker: Literal["mosquitto", "amqtt"] = Field(
        default="mosquitto",
        description="the broker `calstream run` starts when CALSTREAM_BROKER is unset: "
        "mosquitto (Debian's package, a process of its own with persistence in "
        "<work_dir>/mosquitto, outliving a crash of the pipeline) or amqtt (inside the "
        "pipeline's process: drops a delivery not acknowledged within 5 s and loses what it "
        "queued when the process dies)",
    )
    embedded_broker_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=1883,
        description="port on 127.0.0.1 of the broker `calstream run` starts when "
        "CALSTREAM_BROKER is unset",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="address of /metrics, /healthz, /readyz"
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=9464, description="port of /metrics, /healthz, /readyz (0: off)"
    )
    work_dir: Path = Path("calstream-work")
    db: Path | None = Field(
        default=None, description="SQLite store; default <work_dir>/calstream.sqlite"
    )
    store: str | None = Field(
        default=None,
        description="where readings and health go: sqlite:///path (embedded; default: db), "
        "influxdb://[user:password@]host:8086/database (InfluxDB 1.x) or "
        "influxdb2://host:8086?org=ORG&bucket=BUCKET&token=TOKEN (InfluxDB 2.x/3.x)",
    )
    registry: str | None = Field(
        default=None,
        description="registry of an InfluxDB store: postgresql://user@host:5432/database or "
        "sqlite:///path; default sqlite <work_dir>/registry.sqlite",
    )
    fleet: Path | None = Field(
        default=None, description="fleet file (YAML); default: the example fleet"
    )
    decision_rule: str = Field(
        default="simple", description="simple | guard_band_u | risk:<fraction>"
    )
    due_soon_days: Annotated[float, Field(gt=0)] = 30.0
    page_hinkley: bool = Field(
        default=False,
        description="also run the Page-Hinkley test on the residuals (a third drift detector)",
    )
    offline_after_periods: Annotated[float, Field(gt=0)] = 5.0
    max_future_s: Annotated[float, Field(ge=0)] = 300.0
    max_age_days: Annotated[float, Field(gt=0)] = 3650.0
    log_level: str = "WARNING"
    # --- scale-out engine (docs/scaling.md) ---
    kafka_bootstrap: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("CALSTREAM_KAFKA", "kafka_bootstrap", "kafka"),
        description="Kafka bootstrap servers host:port[,host:port] of the scale-out engine "
        "(CALSTREAM_KAFKA)",
    )
    topic_readings: str = Field(default="calstream.readings", description="validated readings")
    topic_calibrations: str = Field(
        default="calstream.calibrations", description="compacted calibration histories"
    )
    topic_dead_letters: str = Field(default="calstream.dead-letters", description="bad input")
    topic_partitions: Annotated[int, Field(ge=1)] = Field(
        default=12, description="partitions of the readings topic: the most workers that share it"
    )
    shared_group: str = Field(
        default="calstream-ingest",
        description="MQTT 5 shared-subscription group of the ingest forwarders",
    )
    ingest_client_id: str | None = Field(
        default=None,
        description="fixed MQTT client id of one forwarder (durable session); "
        "default calstream-ingest-<hostname>",
    )
    faust_store: str = Field(
        default="rocksdb://", description="Faust table store: rocksdb:// or memory://"
    )
    faust_app_id: str = Field(
        default="calstream",
        description="Faust app id: the workers' consumer group and the prefix of their "
        "changelog topics (one per deployment)",
    )
    journal_dir: Path | None = Field(
        default=None,
        description="folder of the pipeline's journal (batches the store could not take yet); "
        "default <work_dir>/journal",
    )
    journal_max_bytes: Annotated[int, Field(ge=0)] = Field(
        default=1 << 30,
        description="largest journal (encoded batches, bytes) before the pipeline stops "
        "acknowledging and the broker keeps the messages; 0: no journal (back-pressure only)",
    )

    poison_after_crashes: Annotated[int, Field(ge=1)] = Field(
        default=2,
        description="a message in hand each time the pipeline process died this many times is "
        "filed as a dead letter (poison_message) instead of being processed again",
    )
    fault_crash_on: str | None = Field(
        default=None,
        description="fault injection for the tests, never for production: the pipeline "
        "process kills itself (SIGKILL) when it takes a message whose payload contains this text",
    )
    # --- scale-out engine: workers and forwarders (docs/scaling.md) ---
    worker_batch_records: Annotated[int, Field(ge=1)] = Field(
        default=500, description="most readings records a worker takes into one store write"
    )
    worker_linger_s: Annotated[float, Field(gt=0)] = Field(
        default=0.5,
        description="longest a worker waits for a batch to fill before it processes and stores it",
    )
    worker_state_every_s: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="how often a worker stores the latest states and writes the changed key "
        "states to its tables (then acknowledges the records to Kafka)",
    )
    worker_clock_tick_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="how often the leading worker asks every partition to re-evaluate OFFLINE "
        "and due dates",
    )
    worker_session_timeout_s: Annotated[float, Field(ge=3)] = Field(
        default=15.0,
        description="how long the workers' group waits for a worker that stopped answering "
        "(a crash, kill -9) before its partitions go to the others",
    )
    worker_client_id: str | None = Field(
        default=None,
        description="MQTT client id of a worker's alert connection; default "
        "calstream-worker-<hostname>-<pid>",
    )
    ingest_fault_crash_after_forward: str | None = Field(
        default=None,
        description="fault injection for the tests, never for production: a forwarder kills "
        "itself (SIGKILL) once Kafka has the records of a message whose payload contains this "
        "text, before the broker hears the message acknowledged",
    )
    # --- HTTP API (docs/api.md) ---
    api_host: str = Field(
        default="127.0.0.1",
        description="address the HTTP API listens on (`calstream run`, `calstream api`)",
    )
    api_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8080,
        description="port of the HTTP API (0: `calstream run` serves none)",
    )
    api_url: str | None = Field(
        default=None,
        description="a running API the registry commands (`calstream tenants|sites|...`) talk "
        "to, http://host:8080; unset: they act on the store directly, as the local principal",
    )
    api_token: SecretStr | None = Field(
        default=None, description="the API token the registry commands present to api_url"
    )

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"api_url {value!r} is not an HTTP URL like http://host:8080")
        return value or None

    @property
    def in_hand_path(self) -> Path:
        """The poison-message ledger (``calstream.runtime.in_hand``), beside the journal."""
        return self.work_dir / "in_hand.sqlite"

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value:
            broker_address(value)
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value:
            store_kind(value)  # ValueError naming the accepted forms
        return value or None

    @field_validator("registry")
    @classmethod
    def _registry_url(cls, value: str | None) -> str | None:
        return check_registry_url(value) if value else None

    @field_validator("decision_rule")
    @classmethod
    def _rule(cls, value: str) -> str:
        DecisionRule.parse(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CALSTREAM_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(
                    f"CALSTREAM_CONFIG names {config_file!r}, which is not a file"
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.work_dir / "calstream.sqlite"

    @property
    def journal_path(self) -> Path:
        return self.journal_dir if self.journal_dir is not None else self.work_dir / "journal"

    @property
    def store_url(self) -> str:
        """The store (``store``, else the embedded SQLite store at :attr:`db_path`)."""
        return self.store or f"{SQLITE_PREFIX}{self.db_path}"

    @property
    def fleet_path(self) -> Path:
        return self.fleet if self.fleet is not None else example_fleet_path()


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of ``mqtt://host:port`` (port 1883 when omitted)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"broker {url!r} is not an MQTT URL like mqtt://localhost:1883")
    return parts.hostname, parts.port or 1883
