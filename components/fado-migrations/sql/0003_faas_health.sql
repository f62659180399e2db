-- Active probes of FaaS deployments (the health checker): consecutive
-- failed probes, so one lost packet does not take a deployment out of routes.
ALTER TABLE faas_deployments ADD COLUMN health_failures integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN faas_deployments.health_failures IS
    'Consecutive failed health probes; two make the deployment unhealthy, one success resets it.';
