-- conductor's own tables.
-- service_events: one row per lifecycle transition of a service, written in batches by
-- conductor-db's EventRecorder. from_state is NULL for the first transition of a run.
-- Timestamps are RFC 3339 UTC strings, so they sort lexically in time order.
CREATE TABLE service_events (
    id             INTEGER PRIMARY KEY,
    service        TEXT NOT NULL,
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    reason         TEXT,
    correlation_id TEXT,
    timestamp      TEXT NOT NULL
);

CREATE INDEX service_events_service_timestamp ON service_events (service, timestamp);

-- Small key/value facts about this database owned by conductor (for example which conductor
-- version created it). Services must not write here; app_meta (V2) is theirs.
CREATE TABLE conductor_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO conductor_meta (key, value) VALUES ('schema_owner', 'conductor');
