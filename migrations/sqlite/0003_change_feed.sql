-- The change feed: every add, restore and delete of a reference stamps the
-- row with the next sequence number, in the same transaction as the change.
-- A process applies the rows whose `seq` is above the highest it has applied,
-- so replicas on one database converge on the store's current state, and a
-- missed wake-up, a restart or a reconnect loses nothing. Rows that existed
-- before the feed take their id as their sequence number.
ALTER TABLE reference ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE reference SET seq = id;
CREATE INDEX reference_seq ON reference (seq);
