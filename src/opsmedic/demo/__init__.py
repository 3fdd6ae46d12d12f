"""The pieces `opsmedic demo` plays with: a small web app that can wedge itself."""
