"""The encoder behind an HTTP API: FastAPI routes over the store and the online defences.

Speaks the protocol ``sleuth steal --victim http://...`` speaks (docs/formats.md): ``GET /info``
and ``POST /represent`` with an ``.npy`` body, a bearer key; the same routes under ``/v1``,
``GET /health`` without a key, OpenAPI docs at ``/docs``, and the owner's page at ``/admin``.

One request, in order: the key (401), the body's size (413), its format (415) and contents (422),
the proof-of-work a gate asks for (428 with a fresh puzzle), the encoder's forward pass, then one
transaction holding the user's row: quota and rate (429), the proof spent once (409), coverage
recorded, the defences applied and charged, the batch counted. A refused request changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import time
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sleuth import __version__
from sleuth.models import Encoder, load_encoder
from sleuth.serve.admin import admin_router
from sleuth.serve.config import CONFIG_ENV, ServeConfig
from sleuth.serve.store import Store, User
from sleuth.steal.accounts import derive_seed
from sleuth.steal.b4b import lsh_center, record_coverage
from sleuth.steal.defences import (
    Defence,
    answer_dim,
    apply_defences,
    coverage_tables,
    gates,
    parse_defence,
)
from sleuth.steal.pow import PROOF_HEADER, Proof, issue

log = logging.getLogger("sleuth.serve")
NPY = "application/x-npy"


class Service:
    """What every request shares: the encoder, the parsed defences, the store and the limits."""

    def __init__(self, cfg: ServeConfig, store: Store | None = None) -> None:
        self.cfg = cfg
        self.encoder: Encoder = load_encoder(cfg.encoder)
        self.defences: list[Defence] = [parse_defence(s) for s in cfg.defences]
        self.gates = gates(self.defences)
        self.tables = coverage_tables(self.defences)
        self.store = store or Store(cfg.db)
        if cfg.lsh_data and self.store.center is None:
            self.store.keep_center(lsh_center(self.encoder, cfg.lsh_data))
        if self.store.center is None:
            log.warning("coverage hashing is not centred (no --lsh-data at the first start)")
        self.rep_dim = answer_dim(self.defences, self.encoder.rep_dim)

    # --- checks, each an HTTPException with a message ----------------------------------------

    def user(self, request: Request, *, basic: bool = False) -> User:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif basic and scheme.lower() == "basic":  # the owner's browser: any name, key as password
            try:
                key = base64.b64decode(value, validate=True).decode().partition(":")[2]
            except ValueError:
                key = ""
        user = self.store.authenticate(key) if key else None
        if user is None:
            challenge = 'Basic realm="sleuth admin"' if basic else "Bearer"
            raise HTTPException(
                401, "missing, unknown or revoked API key", headers={"WWW-Authenticate": challenge}
            )
        return user

    async def images(self, request: Request) -> torch.Tensor:
        limit = self.cfg.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"body of {declared} bytes; the limit is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"body over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.startswith(b"\x93NUMPY"):
            raise HTTPException(415, "the body is not an .npy array (no .npy magic)")
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise HTTPException(415, f"the body is not a readable .npy array: {exc}") from None
        return torch.from_numpy(self._checked(array))

    def _checked(self, a: Any) -> np.ndarray:
        cfg = self.cfg
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            raise HTTPException(422, "images must be a floating-point array")
        if a.ndim != 4 or a.shape[1] not in (1, 3):
            raise HTTPException(422, f"images must be (N, C, H, W) with C 1 or 3, got {a.shape}")
        n, _, h, w = a.shape
        if not 1 <= n <= cfg.max_batch:
            raise HTTPException(422, f"a batch holds 1 to {cfg.max_batch} images, got {n}")
        if not (1 <= h <= cfg.max_side and 1 <= w <= cfg.max_side):
            raise HTTPException(422, f"images are at most {cfg.max_side} pixels a side: {h}x{w}")
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            raise HTTPException(422, "images hold NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise HTTPException(422, "pixel values must lie in [0, 1]")
        return np.ascontiguousarray(a)

    def _price(self, n: int, account: Any) -> int:
        """The bits a batch of ``n`` from ``account`` must pay now (the dearest gate's)."""
        return max(g.price(n, account) for g in self.gates)

    def _puzzle(self, user: User, n: int, bits: int, why: str) -> HTTPException:
        expires = int(time.time() + self.cfg.puzzle_ttl)
        challenge = issue(self.store.secret, user.uid, n, bits, expires)
        return HTTPException(
            428,
            {
                "message": why,
                "puzzle": {
                    "challenge": challenge,
                    "bits": bits,
                    "header": PROOF_HEADER,
                    "expires": expires,
                },
            },
        )

    def proof(self, request: Request, user: User, n: int) -> Proof | None:
        """The proof a gate needs, checked against the user's coverage now (before the forward
        pass, so unpaid requests cost the server nothing but this)."""
        if not self.gates:
            return None
        with self.store.view(user) as account:
            bits = self._price(n, account)
        header = request.headers.get(PROOF_HEADER)
        if header is None:
            raise self._puzzle(user, n, bits, "proof of work required")
        try:
            proof = Proof.parse(header)
        except ValueError as exc:
            raise HTTPException(400, f"{PROOF_HEADER}: {exc}") from None
        problem = proof.problem(self.store.secret, user.uid, n, bits, time.time())
        if problem is not None:
            raise self._puzzle(user, n, bits, problem)
        return proof

    # --- the answer -----------------------------------------------------------------------

    def answer(self, user: User, images: torch.Tensor, proof: Proof | None) -> np.ndarray:
        n = len(images)
        with torch.no_grad():
            reps = self.encoder.represent(images)
        with self.store.batch(user) as account:
            if account.revoked:
                raise HTTPException(
                    401,
                    "missing, unknown or revoked API key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if user.quota is not None and account.queries + n > user.quota:
                raise HTTPException(
                    429, f"quota of {user.quota} queries reached ({account.queries} used)"
                )
            if user.rate is not None and account.recent(60.0) + n > user.rate:
                raise HTTPException(
                    429,
                    f"rate limit of {user.rate} queries a minute",
                    headers={"Retry-After": "60"},
                )
            if proof is not None:
                bits = self._price(n, account)
                problem = proof.problem(self.store.secret, user.uid, n, bits, time.time())
                if problem is not None:
                    raise self._puzzle(user, n, bits, problem)
                if not account.spend(hashlib.sha256(proof.challenge.encode()).hexdigest()):
                    raise HTTPException(409, "this proof of work was already spent")
                account.charge("pow", float(2**proof.bits))
            seed = derive_seed(self.store.secret, "answers", user.uid, str(account.queries))
            gen = torch.Generator().manual_seed(seed)
            out = apply_defences(self.defences, reps, images, gen, account)
            if self.cfg.buckets in self.tables:  # the defences recorded it already
                coverage = account.coverage(self.cfg.buckets)
            else:
                coverage = record_coverage(reps, account, self.cfg.buckets)
            account.answered(n, coverage)
        log.info("answered %d queries for %s (coverage %.4f)", n, user.name, coverage)
        return out.numpy().astype(np.float32)


def _authed(request: Request) -> User:
    return request.app.state.service.user(request)


UserDep = Annotated[User, Depends(_authed)]


def _npy(array: np.ndarray) -> Response:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return Response(buf.getvalue(), media_type=NPY)


def create_app(cfg: ServeConfig, store: Store | None = None) -> FastAPI:
    """The API over ``cfg`` (``store`` given by tests that share one)."""
    service = Service(cfg, store)
    app = FastAPI(
        title="sleuth encoder API",
        version=__version__,
        description="Representations of images from a self-supervised encoder, per user "
        "account, behind the defences its owner chose.",
    )
    app.state.service = service

    api = APIRouter()

    @api.get("/health", summary="Liveness and database check (no key needed)")
    def health() -> dict[str, str]:
        with service.store.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    @api.get("/info", summary="What this API answers, for the calling user")
    def info(user: UserDep) -> dict[str, Any]:
        spec = service.encoder.config.input_spec
        return {
            "rep_dim": service.rep_dim,
            "input": {"channels": spec.channels, "size": spec.size},
            "max_batch": cfg.max_batch,
            "max_side": cfg.max_side,
            "proof_of_work": bool(service.gates),
            "user": user.name,
            "version": __version__,
        }

    @api.post(
        "/represent",
        summary="Representations of an .npy batch of float32 (N, C, H, W) images in [0, 1]",
        response_class=Response,
        responses={200: {"content": {NPY: {}}, "description": "float32 (N, rep_dim) .npy"}},
    )
    async def represent(request: Request, user: UserDep) -> Response:
        images = await service.images(request)
        proof = service.proof(request, user, len(images))
        out = await run_in_threadpool(service.answer, user, images, proof)
        return _npy(out)

    app.include_router(api)
    app.include_router(api, prefix="/v1")
    app.include_router(admin_router(service))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": exc.detail}
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory in each worker process: the config comes in ``SLEUTH_SERVE_CONFIG``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))
