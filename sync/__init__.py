"""Edge ↔ cloud sync: the gateway's outbox uploaded in compressed, signed, idempotent batches;
parameter updates pulled back down; an optional Nightscout destination; and the cloud service.

* :mod:`sync.codec` — the versioned msgpack batch format (columnar, delta, zlib, bounded decode).
* :mod:`sync.auth` — per-gateway credentials, HMAC request signing, replay protection.
* :mod:`sync.transport` — HTTP with an injected ``requests.Session``, retries with backoff+jitter.
* :mod:`sync.uploader` — the outbox reader over the local store: batch, upload, acknowledge.
* :mod:`sync.downlink` — signed, versioned twin-parameter updates: verify, bound-check, adopt, roll back.
* :mod:`sync.nightscout` — Nightscout API v1/v3 uploader.
* :mod:`sync.cloud` — the cloud service (Starlette + uvicorn; SQLite or PostgreSQL) and its jobs.

Errors: :mod:`sync.errors`. ``sync`` depends on ``edgetwin`` core types; never the reverse.
"""
