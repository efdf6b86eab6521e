-- Every blob the coordinator stores, with who uploaded it and how long it is kept. An upload is signed
-- (or made in a signed-in session), so it counts against its account's quota until something funded
-- claims it: a funded job's spec (its module and inputs), a receipt (stdout and outputs), a funded
-- storage deal (its file). A blob is deleted once `keep_until` has passed, unless an open or active deal
-- still needs it: nothing an anonymous caller leaves behind is kept forever.
CREATE TABLE blobs (
    hash        TEXT PRIMARY KEY NOT NULL,
    size        INTEGER NOT NULL,
    uploader    TEXT NOT NULL,            -- the account that first uploaded it ('' before uploads were signed)
    uploaded_at INTEGER NOT NULL,
    keep_until  INTEGER NOT NULL,         -- unix ms
    claimed     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX blobs_unclaimed ON blobs (uploader, claimed);
CREATE INDEX blobs_by_keep ON blobs (keep_until);

-- Registering a file for storage answers the root already computed for that blob, instead of
-- hashing it again (up to a gigabyte a call).
CREATE INDEX storage_files_by_blob ON storage_files (blob_hash);
-- Unfunded specs are deleted once they expire.
CREATE INDEX specs_by_expiry ON specs (expires_at);
CREATE INDEX siwe_nonces_by_expiry ON siwe_nonces (expires_at);
