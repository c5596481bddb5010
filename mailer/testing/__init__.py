"""In-memory stand-ins for mailer's adapters, for tests only (never imported by mailer).

- :class:`FakeSmtp`: an SMTP server in memory, and sessions to it that are
  :class:`mailer.adapters.sender.SmtpSession` itself on an in-memory wire, so every error kind,
  retry and callback point is the real one's;
- :class:`FakeImap` and :class:`FakeMailbox`: IMAP folders in memory behind
  :class:`mailer.adapters.mailbox.Mailbox`'s interface (and its IDLE calls);
- the store: no fake. :meth:`mailer.adapters.store.Store.in_memory` is the real ``Store`` on an
  in-memory SQLite database, so the SQL has one implementation, not two;
- :class:`FakeProcesses`: owner tokens of processes that exist only in the test, which it
  can declare dead without killing anything.

``tests/contract/`` runs one suite against each fake and the real thing it stands for.
"""

from __future__ import annotations

from .imap import FakeImap, FakeMailbox
from .processes import FakeProcess, FakeProcesses
from .settings import imap_settings, smtp_settings
from .smtp import Accepted, FakeSmtp

__all__ = [
    "Accepted",
    "FakeImap",
    "FakeMailbox",
    "FakeProcess",
    "FakeProcesses",
    "FakeSmtp",
    "imap_settings",
    "smtp_settings",
]
