"""The release guard: the controller (services, deployments, verification, rollback to the
last good) and the canary machinery (traffic routers, real-traffic measurements, the judge)."""
