"""The customer-directory port's adapters: the local database, and (later) HTTP."""
