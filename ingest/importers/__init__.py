"""Importers: registry content that arrives as files, turned into domain values.

- :mod:`ingest.importers.fleet_file`: a whole fleet (tenants, sites, instruments and their
  calibration certificates) from the YAML fleet file.

Certificates in other formats (Digital Calibration Certificates, DCC XML) belong here, one module
per format, each returning :mod:`metrology` values that the registry then records.
"""
