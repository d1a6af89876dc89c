DROP INDEX deployments_running;
CREATE INDEX deployments_running ON deployments (state, component, environment, started_at);
