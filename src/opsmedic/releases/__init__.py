"""The release guard's machinery: traffic routers, real-traffic measurements, the judge."""
