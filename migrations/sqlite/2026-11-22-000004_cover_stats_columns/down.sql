DROP INDEX deployments_running;
CREATE INDEX deployments_running ON deployments (component, environment, state, started_at);
CREATE INDEX deployments_component_finished ON deployments (component, environment, finished_at);
DROP INDEX deployments_component_anchor;
CREATE INDEX deployments_component_anchor ON deployments (component, environment, anchor_at, seq);
