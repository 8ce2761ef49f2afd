-- The history of the database: how many new timelines it has started since these migrations
-- first ran. A promotion after a failover (or a point-in-time recovery) starts a new timeline,
-- and a promoted standby may lack the last commits of the old primary, whose version numbers it
-- then hands out again. The cache orders copies by (history, version), so that every copy
-- written from the promoted database orders above every copy of the history it lost.

-- The server's timeline: the first eight hex digits of the WAL file being written (a standby,
-- which writes none, answers its last checkpoint's).
CREATE FUNCTION shopnow_server_timeline() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN pg_is_in_recovery()
        THEN (SELECT timeline_id FROM pg_control_checkpoint())::bigint
        ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
    END
$$;

-- The timeline at the first migration: history 0. One row.
CREATE TABLE shopnow_history_base (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    timeline BIGINT  NOT NULL
);
INSERT INTO shopnow_history_base (timeline) SELECT shopnow_server_timeline();

-- Never below 0: a database restored from a dump onto a server with a lower timeline keeps
-- counting from 0 (flush the cache after such a restore; the README says so).
CREATE FUNCTION shopnow_history() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT greatest(0, shopnow_server_timeline() - (SELECT timeline FROM shopnow_history_base))
$$;
