"""Store URLs of the InfluxDB sink: both APIs, HTTPS, options, and refusals that say why."""

from __future__ import annotations

import pytest

from storage.influx import InfluxTarget, WritePolicy, parse_store_url
from storage.influx.retry import parse_retry_after


def test_v1_url_with_credentials_database_and_retention_policy() -> None:
    target = parse_store_url("influxdb://calstream:s%40cret@influx.example:8087/plant?rp=one_year")
    assert target == InfluxTarget(
        api="v1",
        base_url="http://influx.example:8087",
        database="plant",
        retention_policy="one_year",
        username="calstream",
        password="s@cret",
    )
    assert "s@cret" not in repr(target) and "s@cret" not in target.redacted_url


def test_v1_https_and_default_port() -> None:
    target = parse_store_url("influxdbs://host/calstream")
    assert (target.base_url, target.database, target.username) == (
        "https://host:8086",
        "calstream",
        None,
    )


def test_v2_url_with_org_bucket_token_and_options() -> None:
    target = parse_store_url(
        "influxdb2s://cloud.example?org=acme&bucket=series&token=t0k%3D%3D&chunk_lines=2000"
        "&in_flight=8&senders=3&retry_s=5&timeout_s=2.5&gzip=false&reads=victoriametrics"
    )
    assert target == InfluxTarget(
        api="v2",
        base_url="https://cloud.example:8086",
        database="series",
        org="acme",
        bucket="series",
        token="t0k==",
        reads="victoriametrics",
        policy=WritePolicy(
            chunk_lines=2000, in_flight=8, senders=3, retry_s=5.0, timeout_s=2.5, gzip=False
        ),
    )
    assert "t0k" not in repr(target)


def test_v2_url_for_influxdb_18_takes_user_and_password_as_token() -> None:
    target = parse_store_url("influxdb2://me:pw@host:8086?org=-&bucket=db/rp&database=db")
    assert (target.token, target.bucket, target.database) == ("me:pw", "db/rp", "db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://host/db", "not an InfluxDB store URL"),
        ("influxdb://host:8086", "name the database"),
        ("influxdb://host:8086/a/b", "name the database"),
        ("influxdb2://host:8086?org=o&token=t", "missing bucket"),
        ("influxdb2://host:8086?bucket=b", "missing org, token"),
        ("influxdb://host/db?chunk_lines=many", "chunk_lines='many' is not a number"),
        ("influxdb://host/db?in_flight=0", "at least 1"),
        ("influxdb://host/db?reads=flux", "reads='flux'"),
        ("influxdb://host/db?gzip=maybe", "gzip='maybe'"),
        ("influxdb://host/db?precision=s", "unknown option(s) precision"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_store_url(url)


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=1_767_225_600.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_public_api_is_what_all_lists() -> None:
    import storage.influx

    assert sorted(storage.influx.__all__) == [
        "InfluxSink",
        "InfluxTarget",
        "WritePolicy",
        "parse_store_url",
    ]
    assert all(hasattr(storage.influx, name) for name in storage.influx.__all__)
