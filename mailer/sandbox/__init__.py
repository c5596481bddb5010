"""The built-in local mail servers (Dovecot, an SMTP server, an OAuth2 server) for trying mailer without an account, and for the test suite."""
