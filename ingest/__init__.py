"""MQTT ingest: durable subscription, decoders per wire format, admission, intake, dead letters."""
