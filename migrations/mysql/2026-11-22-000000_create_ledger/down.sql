DROP TABLE events;
DROP TABLE deployments;
