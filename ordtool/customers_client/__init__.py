"""The customer-directory port's adapters: the local database (local.py), and HTTP (http.py)
with its circuit breaker (breaker.py) and look-up cache (cache.py)."""
