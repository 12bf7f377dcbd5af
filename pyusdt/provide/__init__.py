"""The provider side: Python programs declare and fire their own USDT probes
(provider), time functions and blocks with them (latency), and report web
requests (middleware).  Importing it loads neither numpy nor the tracer."""
from pyusdt.provide.provider import Provider, ProviderProbe

__all__ = ["Provider", "ProviderProbe"]
