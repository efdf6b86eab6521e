-- The committee's signature exchange: a member proposes something to sign (a settlement batch, a
-- storage attestation, a challenge resolution) by its EIP-712 digest; members add signatures; any one
-- submits once the committee's threshold is met.
CREATE TABLE verifier_proposals (
    digest     TEXT PRIMARY KEY,           -- 0x-hex EIP-712 digest
    kind       TEXT NOT NULL,              -- settlement | attestation | resolution
    payload    TEXT NOT NULL,              -- JSON: what the digest is of, for the others to check
    proposer   TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX verifier_proposals_by_age ON verifier_proposals (created_at);

CREATE TABLE verifier_signatures (
    digest    TEXT NOT NULL REFERENCES verifier_proposals (digest),
    signer    TEXT NOT NULL,
    signature TEXT NOT NULL,               -- 0x-hex, 65 bytes
    signed_at INTEGER NOT NULL,
    PRIMARY KEY (digest, signer)
) STRICT;
