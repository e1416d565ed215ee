"""StepEdit's OSC bridge: the protocol, the server, and the Python client and CLI."""
