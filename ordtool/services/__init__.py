"""The service layer: one short function per use case, over the ports in ``ports``."""
