"""The tenant domain: the tenant file's model and loader, names, credentials, database URLs, signing
secrets and identity changes. It imports nothing else of this repository."""
