-- An embedded calstream store written before the registry operations (registry revision
-- 0001, store schema 3): tests/storage/conftest.py's fleet registered, ten readings of
-- acme-n-TT-001, one snapshot, one status change. Dumped with sqlite3's iterdump();
-- tests/storage/test_registry_migrations.py rebuilds the file and migrates it.
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0001');
CREATE TABLE alerts (
	id INTEGER NOT NULL, 
	tenant TEXT NOT NULL, 
	site TEXT NOT NULL, 
	instrument_id TEXT NOT NULL, 
	ts FLOAT NOT NULL, 
	previous TEXT, 
	status TEXT NOT NULL, 
	reasons TEXT NOT NULL, 
	numbers TEXT NOT NULL, 
	CONSTRAINT pk_alerts PRIMARY KEY (id), 
	CONSTRAINT uq_alerts_instrument_id_ts_status UNIQUE (instrument_id, ts, status)
);
INSERT INTO "alerts" VALUES(1,'acme','north','acme-n-TT-001',1780000300.0,'OK','DRIFTING','["drifting"]','{"residual":0.04}');
CREATE TABLE calibration_curve_points (
	instrument_id TEXT NOT NULL, 
	certificate_id TEXT NOT NULL, 
	revision INTEGER NOT NULL, 
	point INTEGER NOT NULL, 
	indication FLOAT NOT NULL, 
	correction FLOAT NOT NULL, 
	CONSTRAINT pk_calibration_curve_points PRIMARY KEY (instrument_id, certificate_id, revision, point), 
	CONSTRAINT fk_calibration_curve_points_calibrations FOREIGN KEY(instrument_id, certificate_id, revision) REFERENCES calibrations (instrument_id, certificate_id, revision)
);
CREATE TABLE calibrations (
	instrument_id TEXT NOT NULL, 
	certificate_id TEXT NOT NULL, 
	revision INTEGER NOT NULL, 
	in_force BOOLEAN NOT NULL, 
	calibrated_at FLOAT NOT NULL, 
	correction_kind TEXT NOT NULL, 
	correction_offset FLOAT, 
	correction_gain FLOAT, 
	expanded_uncertainty FLOAT NOT NULL, 
	coverage_factor FLOAT NOT NULL, 
	standard_uncertainty FLOAT NOT NULL, 
	interval_days FLOAT NOT NULL, 
	due_at FLOAT NOT NULL, 
	as_found_error FLOAT, 
	amended_at FLOAT, 
	amended_by TEXT, 
	amendment_reason TEXT, 
	CONSTRAINT pk_calibrations PRIMARY KEY (instrument_id, certificate_id, revision), 
	CONSTRAINT fk_calibrations_instrument_id_instruments FOREIGN KEY(instrument_id) REFERENCES instruments (instrument_id)
);
INSERT INTO "calibrations" VALUES('acme-n-TT-001','CAL-acme-n-TT-001-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('acme-n-TT-002','CAL-acme-n-TT-002-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('acme-n-TT-003','CAL-acme-n-TT-003-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('acme-n-TT-003','CAL-acme-n-TT-003-2',0,1,1780272000.0,'gain_offset',-0.01,1.0,0.05,2.0,0.025,180.0,1795824000.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('acme-s-PT-001','CAL-acme-s-PT-001-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('globex-TT-001','CAL-globex-TT-001-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
INSERT INTO "calibrations" VALUES('globex-TT-002','CAL-globex-TT-002-1',0,1,1768435200.0,'gain_offset',0.02,1.0001,0.06,2.0,0.03,365.0,1799971200.0,NULL,NULL,NULL,NULL);
CREATE TABLE dead_letters (
	id INTEGER NOT NULL, 
	received_at FLOAT NOT NULL, 
	topic TEXT NOT NULL, 
	tenant TEXT, 
	instrument_id TEXT, 
	seq BIGINT, 
	reason TEXT NOT NULL, 
	detail TEXT NOT NULL, 
	excerpt TEXT NOT NULL, 
	count INTEGER NOT NULL, 
	dedup_key TEXT NOT NULL, 
	CONSTRAINT pk_dead_letters PRIMARY KEY (id), 
	CONSTRAINT uq_dead_letters_dedup_key UNIQUE (dedup_key)
);
CREATE TABLE instrument_state (
	instrument_id TEXT NOT NULL, 
	tenant TEXT NOT NULL, 
	site TEXT NOT NULL, 
	status TEXT NOT NULL, 
	conditions TEXT NOT NULL, 
	reasons TEXT NOT NULL, 
	evaluated_at FLOAT NOT NULL, 
	last_reading_at FLOAT, 
	numbers TEXT NOT NULL, 
	residual FLOAT, 
	u_residual FLOAT, 
	drift_rate FLOAT, 
	predicted_oot_at FLOAT, 
	probability_of_conformity FLOAT, 
	due_at FLOAT, 
	first_drift_at FLOAT, 
	CONSTRAINT pk_instrument_state PRIMARY KEY (instrument_id)
);
INSERT INTO "instrument_state" VALUES('acme-n-TT-001','acme','north','DRIFTING','["DRIFTING"]','["drifting"]',1780000600.0,1780000540.0,'{"residual":0.04}',0.04,NULL,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE instruments (
	instrument_id TEXT NOT NULL, 
	tenant TEXT NOT NULL, 
	site TEXT NOT NULL, 
	gateway TEXT NOT NULL, 
	measurand TEXT NOT NULL, 
	unit TEXT NOT NULL, 
	tolerance_lower FLOAT, 
	tolerance_upper FLOAT, 
	tolerance_relative FLOAT NOT NULL, 
	reporting_period_s FLOAT NOT NULL, 
	reference_kind TEXT NOT NULL, 
	peer_group TEXT, 
	reference_instrument TEXT, 
	range_low FLOAT NOT NULL, 
	range_high FLOAT NOT NULL, 
	description TEXT NOT NULL, 
	decision_rule TEXT, 
	interval_policy TEXT, 
	CONSTRAINT pk_instruments PRIMARY KEY (instrument_id), 
	CONSTRAINT fk_instruments_tenant_site_sites FOREIGN KEY(tenant, site) REFERENCES sites (tenant, site_id)
);
INSERT INTO "instruments" VALUES('acme-n-TT-001','acme','north','gw-01','temperature','degC',-0.5,0.5,0.0,60.0,'check_standard',NULL,NULL,0.0,200.0,'',NULL,NULL);
INSERT INTO "instruments" VALUES('acme-n-TT-002','acme','north','gw-01','temperature','degC',-0.5,0.5,0.0,60.0,'check_standard',NULL,NULL,0.0,200.0,'',NULL,NULL);
INSERT INTO "instruments" VALUES('acme-n-TT-003','acme','north','gw-01','temperature','degC',-0.5,0.5,0.0,60.0,'check_standard',NULL,NULL,0.0,200.0,'',NULL,NULL);
INSERT INTO "instruments" VALUES('acme-s-PT-001','acme','south','gw-01','pressure','bar',-0.01,0.01,0.001,60.0,'none',NULL,NULL,0.0,10.0,'line pressure',NULL,NULL);
INSERT INTO "instruments" VALUES('globex-TT-001','globex','main','gw-01','temperature','degC',-0.5,0.5,0.0,60.0,'check_standard',NULL,NULL,0.0,200.0,'',NULL,NULL);
INSERT INTO "instruments" VALUES('globex-TT-002','globex','main','gw-01','temperature','degC',-0.5,0.5,0.0,60.0,'check_standard',NULL,NULL,0.0,200.0,'',NULL,NULL);
CREATE TABLE readings (
    ts             REAL NOT NULL,
    instrument_id  TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    value          REAL NOT NULL,
    corrected      REAL,
    certificate_id TEXT,
    status         TEXT NOT NULL,
    PRIMARY KEY (ts, instrument_id, seq)
) WITHOUT ROWID;
INSERT INTO "readings" VALUES(1780000000.0,'acme-n-TT-001',0,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000060.0,'acme-n-TT-001',1,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000120.0,'acme-n-TT-001',2,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000180.0,'acme-n-TT-001',3,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000240.0,'acme-n-TT-001',4,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000300.0,'acme-n-TT-001',5,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000360.0,'acme-n-TT-001',6,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000420.0,'acme-n-TT-001',7,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000480.0,'acme-n-TT-001',8,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
INSERT INTO "readings" VALUES(1780000540.0,'acme-n-TT-001',9,21.5,21.52,'CAL-acme-n-TT-001-1','OK');
CREATE TABLE residuals (
    ts             REAL NOT NULL,
    instrument_id  TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    reference      REAL,
    residual       REAL,
    u_residual     REAL,
    ewma           REAL,
    cusum_high     REAL,
    cusum_low      REAL,
    drift_rate     REAL,
    PRIMARY KEY (ts, instrument_id, seq)
) WITHOUT ROWID;
INSERT INTO "residuals" VALUES(1780000000.0,'acme-n-TT-001',0,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000060.0,'acme-n-TT-001',1,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000120.0,'acme-n-TT-001',2,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000180.0,'acme-n-TT-001',3,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000240.0,'acme-n-TT-001',4,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000300.0,'acme-n-TT-001',5,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000360.0,'acme-n-TT-001',6,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000420.0,'acme-n-TT-001',7,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000480.0,'acme-n-TT-001',8,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
INSERT INTO "residuals" VALUES(1780000540.0,'acme-n-TT-001',9,21.48,0.04,0.032,0.01,0.0,0.0,0.001);
CREATE TABLE schema_version (
    version        INTEGER NOT NULL
);
INSERT INTO "schema_version" VALUES(3);
CREATE TABLE sites (
	tenant TEXT NOT NULL, 
	site_id TEXT NOT NULL, 
	name TEXT NOT NULL, 
	CONSTRAINT pk_sites PRIMARY KEY (tenant, site_id), 
	CONSTRAINT fk_sites_tenant_tenants FOREIGN KEY(tenant) REFERENCES tenants (tenant_id)
);
INSERT INTO "sites" VALUES('acme','north','North plant');
INSERT INTO "sites" VALUES('acme','south','South plant');
INSERT INTO "sites" VALUES('globex','main','');
CREATE TABLE tenant_clients (
	provider TEXT NOT NULL, 
	client TEXT NOT NULL, 
	CONSTRAINT pk_tenant_clients PRIMARY KEY (provider, client), 
	CONSTRAINT fk_tenant_clients_client_tenants FOREIGN KEY(client) REFERENCES tenants (tenant_id), 
	CONSTRAINT fk_tenant_clients_provider_tenants FOREIGN KEY(provider) REFERENCES tenants (tenant_id)
);
INSERT INTO "tenant_clients" VALUES('calprov','acme');
INSERT INTO "tenant_clients" VALUES('calprov','globex');
CREATE TABLE tenants (
	tenant_id TEXT NOT NULL, 
	name TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	CONSTRAINT pk_tenants PRIMARY KEY (tenant_id)
);
INSERT INTO "tenants" VALUES('acme','ACME Precision Parts','manufacturer');
INSERT INTO "tenants" VALUES('globex','Globex','manufacturer');
INSERT INTO "tenants" VALUES('calprov','Cal Provider','calibration_provider');
CREATE INDEX alerts_by_tenant_time ON alerts (tenant, ts);
CREATE INDEX alerts_by_time ON alerts (ts);
CREATE INDEX dead_letters_by_time ON dead_letters (received_at);
CREATE INDEX instrument_state_by_site ON instrument_state (tenant, site);
CREATE INDEX instruments_by_site ON instruments (tenant, site);
CREATE VIEW readings_full AS
    SELECT i.tenant AS tenant, i.site AS site, i.gateway AS gateway,
           r.instrument_id AS instrument_id, r.ts AS ts, r.value AS value, i.unit AS unit,
           r.seq AS seq, r.corrected AS corrected, r.certificate_id AS certificate_id,
           x.reference AS reference, x.residual AS residual, x.u_residual AS u_residual,
           x.ewma AS ewma, x.cusum_high AS cusum_high, x.cusum_low AS cusum_low,
           x.drift_rate AS drift_rate, r.status AS status, i.measurand AS measurand
    FROM readings AS r
    LEFT JOIN residuals AS x
        ON x.ts = r.ts AND x.instrument_id = r.instrument_id AND x.seq = r.seq
    LEFT JOIN instruments AS i ON i.instrument_id = r.instrument_id;
CREATE VIEW status_history AS
    SELECT id, ts, strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch') AS ts_utc,
           tenant, site, instrument_id, previous, status, reasons, numbers
    FROM alerts;
COMMIT;
