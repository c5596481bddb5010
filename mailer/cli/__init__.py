"""The command line: click commands, thin over the services."""
