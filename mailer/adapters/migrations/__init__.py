"""The store's Alembic revisions (see mailer.adapters.migrate). Read only to migrate."""
