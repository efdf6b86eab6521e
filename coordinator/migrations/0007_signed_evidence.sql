-- What each replica signed, kept as evidence: its lease acceptance and its seal commitment (EIP-712
-- signatures under the escrow's domain, 0x-hex r || s || v). A provider can lose stake only on evidence
-- it signed: a replica without them "did not run", whatever its status says.
-- Assignment statuses: leased (offered) | accepted | sealed | revealed | lapsed | failed | released.
ALTER TABLE assignments ADD COLUMN acceptance TEXT;
ALTER TABLE assignments ADD COLUMN seal_signature TEXT;

-- The redundancy the job was funded with, part of its on-chain record (workers check that record
-- against the escrow's commitment); `redundancy` is how many replicas are wanted now, which an
-- escalation raises.
ALTER TABLE jobs ADD COLUMN funded_redundancy INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET funded_redundancy = redundancy;

-- The spec a receipt says its worker ran (part of the signed receipt).
ALTER TABLE receipts ADD COLUMN spec_hash TEXT NOT NULL DEFAULT '';
