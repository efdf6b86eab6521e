-- Storage hosting, the verifier committee and Sign-In with Ethereum sessions.

-- Files buyers uploaded for storage, by the Merkle root the coordinator recomputed from the blob.
CREATE TABLE storage_files (
    root        TEXT PRIMARY KEY NOT NULL,
    blob_hash   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL
);

-- `status` of a deal is its state on chain (open | active | cancelled | settled), set only by events so a
-- reorg can replay it; hosting progress off chain is in the columns below.
ALTER TABLE storage_deals ADD COLUMN periods INTEGER NOT NULL DEFAULT 0;
ALTER TABLE storage_deals ADD COLUMN period_length INTEGER NOT NULL DEFAULT 0;
ALTER TABLE storage_deals ADD COLUMN price_per_period TEXT NOT NULL DEFAULT '0';
ALTER TABLE storage_deals ADD COLUMN preferred TEXT NOT NULL DEFAULT '0x0000000000000000000000000000000000000000';
ALTER TABLE storage_deals ADD COLUMN start_block INTEGER;
-- The provider the coordinator handed the file to, what root it recomputed, and who refused it.
ALTER TABLE storage_deals ADD COLUMN offered_to TEXT;
ALTER TABLE storage_deals ADD COLUMN reported_root TEXT;
ALTER TABLE storage_deals ADD COLUMN refused_by TEXT NOT NULL DEFAULT '[]';

-- One challenge per deal and period, relayed by a committee member, answered by the provider.
CREATE TABLE storage_challenges (
    deal_id     TEXT NOT NULL,
    period      INTEGER NOT NULL,
    chunk_index INTEGER NOT NULL,
    issued_by   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    -- open | answered
    status      TEXT NOT NULL,
    chunk       TEXT,                     -- 0x-hex, CHUNK_SIZE bytes
    path        TEXT,                     -- JSON array of 0x-hex siblings
    answered_at INTEGER,
    PRIMARY KEY (deal_id, period)
);

-- Members of the VerifierCommittee (a fold over MemberAdded / MemberRemoved).
CREATE TABLE committee_members (
    address      TEXT PRIMARY KEY NOT NULL,
    block_number INTEGER NOT NULL
);

-- Sign-In with Ethereum: nonces handed out (each used once) and the sessions they opened.
CREATE TABLE siwe_nonces (
    nonce      TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,  -- keccak of the bearer token; the token itself is not stored
    address    TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
