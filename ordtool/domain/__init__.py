"""Pure domain model: customers, orders, the status machine, events and commands.

Imports nothing of ordtool but the leaf module ``ordtool.errors``.
"""
