"""The security boundary: key derivation, key slots, keyed ids, sealing and opening blobs."""
