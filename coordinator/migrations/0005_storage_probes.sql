-- A buyer's spot check of a storage deal, outside the challenge periods: the buyer names a chunk,
-- the provider proves it now, and the coordinator keeps the answer only once it checks against the
-- deal's root. Nothing is paid or slashed by a probe; it tells the buyer the file is still there.
CREATE TABLE storage_probes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    deal_id      TEXT NOT NULL,
    chunk_index  INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    -- open | answered
    status       TEXT NOT NULL,
    chunk        TEXT,                    -- 0x-hex, CHUNK_SIZE bytes
    path         TEXT,                    -- JSON array of 0x-hex siblings
    answered_at  INTEGER
);
CREATE INDEX storage_probes_open ON storage_probes (deal_id, status);
