"""MQTT ingest: durable subscription, decoding (metrology.wire), admission, dead letters."""
