#!/bin/sh
# Run once by the influxdb:2.x image after its initial setup (/docker-entrypoint-initdb.d):
# map the InfluxQL database/retention policy the dashboards query (CALSTREAM_INFLUXDB_DATABASE,
# default "calstream", rp "autogen") to the bucket calstream writes (DOCKER_INFLUXDB_INIT_BUCKET).
# InfluxQL on InfluxDB 2.x reads buckets only through such a DBRP mapping.
set -eu

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${CALSTREAM_INFLUXDB_DATABASE:-calstream}" \
  --rp autogen \
  --default
