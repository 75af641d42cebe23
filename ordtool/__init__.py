"""ordtool: run and operate the order system (customer service + order service)."""

__version__ = "0.1.0"
