-- The coordinator's store. Hashes and addresses are 0x-prefixed lowercase hex text, amounts are decimal
-- text (they exceed 64 bits), times are unix milliseconds.

-- Job specs as buyers upload them, keyed by spec hash. A spec may exist before its funding arrives.
CREATE TABLE specs (
    spec_hash   TEXT PRIMARY KEY NOT NULL,
    spec_json   TEXT NOT NULL,            -- canonical JSON
    module_hash TEXT NOT NULL,
    redundancy  INTEGER NOT NULL,
    fuel_limit  INTEGER NOT NULL,
    wall_clock_ms INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL          -- dropped from matching when no funding arrived by then
);

-- Compute jobs funded on chain (ComputeJobCreated), keyed by the escrow's job id.
CREATE TABLE jobs (
    job_id       TEXT PRIMARY KEY NOT NULL,
    spec_hash    TEXT NOT NULL,
    buyer        TEXT NOT NULL,
    token        TEXT NOT NULL,
    budget       TEXT NOT NULL,
    deadline     INTEGER NOT NULL,        -- unix seconds
    redundancy   INTEGER NOT NULL,
    preferred    TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash   TEXT NOT NULL,
    -- awaiting_spec | matching | unmatched | running | completed | failed | expired
    status       TEXT NOT NULL,
    reason       TEXT,                    -- why it is unmatched / failed / expired
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_by_spec ON jobs (spec_hash);
CREATE INDEX jobs_by_status ON jobs (status);

-- Providers: on-chain registration (from ProviderRegistry events) plus off-chain liveness.
CREATE TABLE providers (
    address        TEXT PRIMARY KEY NOT NULL,
    stake          TEXT NOT NULL,
    price_per_fuel TEXT NOT NULL,
    capacity       INTEGER NOT NULL,
    region         TEXT NOT NULL,
    completed      INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    slashed        INTEGER NOT NULL DEFAULT 0,
    registered_block INTEGER NOT NULL,
    last_heartbeat INTEGER                -- NULL until the worker first checks in
);

-- One replica of a job, leased to one provider.
CREATE TABLE assignments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    provider        TEXT NOT NULL,
    -- leased | sealed | revealed | lapsed | released
    status          TEXT NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    seal            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- A provider runs a job at most once, whatever happened to earlier leases.
CREATE UNIQUE INDEX assignments_once ON assignments (job_id, provider);
CREATE INDEX assignments_by_provider ON assignments (provider, status);
CREATE INDEX assignments_by_lease ON assignments (status, lease_expires_at);

-- Signed receipts, one per job and worker (a retry of the same receipt is the same row).
CREATE TABLE receipts (
    job_id        TEXT NOT NULL,
    worker        TEXT NOT NULL,
    result_digest TEXT NOT NULL,
    stdout_hash   TEXT NOT NULL,
    exit_code     INTEGER NOT NULL,
    fuel_used     INTEGER NOT NULL,
    signature     TEXT NOT NULL,
    outputs       TEXT NOT NULL,          -- JSON array of {path, hash} uploaded to the blob store
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (job_id, worker)
);

-- Storage deals and their challenges (filled from escrow events; the verifier relays challenges).
CREATE TABLE storage_deals (
    deal_id      TEXT PRIMARY KEY NOT NULL,
    buyer        TEXT NOT NULL,
    provider     TEXT,
    root         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    status       TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE challenges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,            -- compute | storage
    subject_id  TEXT NOT NULL,            -- job id or deal id
    detail      TEXT NOT NULL,            -- JSON
    block_number INTEGER,
    created_at  INTEGER NOT NULL
);

-- Settlement batches seen on chain.
CREATE TABLE settlements (
    batch_id     TEXT PRIMARY KEY NOT NULL,
    detail       TEXT NOT NULL,           -- JSON of the event
    finalized    INTEGER NOT NULL DEFAULT 0,
    block_number INTEGER NOT NULL
);

-- Every block the watcher processed (with its parent, to see reorgs) and every event it applied.
CREATE TABLE chain_blocks (
    number      INTEGER PRIMARY KEY NOT NULL,
    hash        TEXT NOT NULL,
    parent_hash TEXT NOT NULL
);
CREATE TABLE chain_events (
    block_number INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    block_hash   TEXT NOT NULL,
    tx_hash      TEXT NOT NULL,
    name         TEXT NOT NULL,
    detail       TEXT NOT NULL,           -- JSON
    PRIMARY KEY (block_number, log_index)
);
-- The last block whose events are applied (one row).
CREATE TABLE chain_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_block INTEGER NOT NULL
);

-- What happened to each job, in order: who, when, which block or receipt.
CREATE TABLE timeline (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT NOT NULL,           -- "job:<id>" or "spec:<hash>"
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,           -- chain | coordinator | worker:<address> | buyer:<address>
    kind         TEXT NOT NULL,
    detail       TEXT NOT NULL,           -- JSON
    block_number INTEGER
);
CREATE INDEX timeline_by_subject ON timeline (subject, id);

-- Nonces a signed request used, so a captured request cannot be replayed.
CREATE TABLE nonces (
    address TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    PRIMARY KEY (address, nonce)
);
