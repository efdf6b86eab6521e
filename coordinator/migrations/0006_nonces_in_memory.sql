-- Signed requests' nonces are kept in memory for the clock window (auth::Replays); a request signed
-- before the coordinator started is refused, so a restart reopens no replay window.
DROP INDEX nonces_by_age;
DROP TABLE nonces;
