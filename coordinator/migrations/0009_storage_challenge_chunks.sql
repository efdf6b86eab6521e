-- A storage period challenges several chunks (the deal's `challengesPerPeriod`): the indexes the
-- committee relayed, as a JSON array; `chunk_index` keeps the first. An answer keeps every chunk and
-- path: `chunk` a JSON array of 0x-hex chunks, `path` a JSON array of their paths.
ALTER TABLE storage_challenges ADD COLUMN chunk_indexes TEXT NOT NULL DEFAULT '[]';
