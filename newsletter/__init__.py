"""newsletter: one weekly issue, distributed as email and as WeChat articles."""

__version__ = "0.1.0"
