"""chunksync: self-hosted, end-to-end-encrypted folder sync."""

__version__ = "0.1.0"
