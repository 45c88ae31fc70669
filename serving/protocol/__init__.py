"""Wire protocols spoken by the service, free of any web framework."""
