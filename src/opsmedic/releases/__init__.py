"""The release controller: services, deployments, verification, rollback to the last good."""
