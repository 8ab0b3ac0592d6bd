"""Fleet orchestration through the Automation API: stack selection, runs, waves, locks, recovery,
migration, offboarding, status, the rehearsal and operator rendering. The CLI is a thin layer on it."""
