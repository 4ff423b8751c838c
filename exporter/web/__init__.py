"""What the exporter serves over HTTP to people: the status page at `/`."""
