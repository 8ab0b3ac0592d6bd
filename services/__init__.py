"""The local services a rehearsal or a test starts: PostgreSQL, the AWS stand-in, the webhook receiver,
and the records that say which processes are ours (fleet rule 6)."""
