"""The pieces `opsmedic demo` plays with: a web app that can wedge itself, a DNS server."""
