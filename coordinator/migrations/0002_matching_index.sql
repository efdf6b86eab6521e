-- Matching reads waiting jobs oldest first, a page at a time: an index in that order per status lets
-- it read a page without sorting every waiting job.
CREATE INDEX jobs_waiting ON jobs (status, block_number, job_id);
-- Expiry looks for jobs past their deadline every second: a range scan of the late ones only.
CREATE INDEX jobs_by_deadline ON jobs (deadline);
-- Housekeeping drops nonces older than the clock window.
CREATE INDEX nonces_by_age ON nonces (used_at);
