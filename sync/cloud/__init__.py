"""The cloud twin service: HTTP app (:mod:`sync.cloud.app`), storage (:mod:`sync.cloud.db`),
configuration (:mod:`sync.cloud.config`), re-personalisation jobs (:mod:`sync.cloud.jobs`) and
the server runner (:mod:`sync.cloud.server`). Needs the ``cloud`` extra (Starlette, uvicorn)."""
