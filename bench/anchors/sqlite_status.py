"""Anchor for `mailer status`: one query over the threads table, one line printed per thread.

Usage: sqlite_status.py STATE_DB
"""

import sqlite3
import sys

db = sqlite3.connect(sys.argv[1])
rows = db.execute(
    "SELECT id, recipient, company, state, follow_up_due FROM threads ORDER BY id"
).fetchall()
for r in rows:
    print(f"{r[0]:>6}  {r[1]:<32} {r[2]:<20} {r[3]:<16} {r[4] or ''}")
