"""I/O behind small interfaces: SMTP, IMAP, the store (SQL only), processes and locks, the clock, secrets, configuration files. Each has a fake in mailer.testing."""
