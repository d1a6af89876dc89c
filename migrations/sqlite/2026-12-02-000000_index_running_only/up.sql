-- A finish without an id looks up the running deployment of its component and
-- environment; nothing else reads this index. Keeping only the running
-- deployments in it (a partial index) makes a finish delete one entry instead
-- of moving it to another part of the index: one page less written per
-- finish, and an index as small as the number of deployments in progress
-- instead of one entry per deployment ever made. The lookup names the state
-- as a literal, which is what lets SQLite use a partial index.
DROP INDEX deployments_running;
CREATE INDEX deployments_running ON deployments (component, environment, started_at)
    WHERE state = 'running';
