-- Matching reads waiting jobs oldest first, a page at a time: an index in that order per status lets
-- it read a page without sorting every waiting job.
CREATE INDEX jobs_waiting ON jobs (status, block_number, job_id);
