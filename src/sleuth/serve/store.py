"""The server's state in a real database: accounts, and every user's queries, coverage and cost.

SQLAlchemy Core over SQLite (the default: one host, any number of uvicorn workers; WAL, and
``BEGIN IMMEDIATE`` so that two workers never interleave a read-modify-write) or PostgreSQL
(several hosts behind a load balancer; the user's row is locked ``FOR UPDATE`` for the length of
a request's accounting). Every update is an increment or an insert-if-absent inside one
transaction per answered batch, so concurrent workers lose no updates and a restart loses
nothing that was answered.

API keys are ``sk-<id>-<secret>``: the id finds the row, and SHA-256 of the 256-bit secret is
compared in constant time. A fast hash is enough for a random key of that length (a slow
password hash defends guessable secrets); the key itself is shown once and stored nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import torch
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from sleuth.errors import SleuthError

meta = sa.MetaData()
settings = sa.Table(
    "settings", meta, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text)
)
users = sa.Table(
    "users",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(32), unique=True, nullable=False),  # seeds derive from it
    sa.Column("name", sa.String(200), unique=True, nullable=False),
    sa.Column("key_id", sa.String(32), unique=True, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("owner", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float, nullable=True),
    sa.Column("quota", sa.BigInteger, nullable=True),  # total queries allowed; None: unlimited
    sa.Column("rate", sa.BigInteger, nullable=True),  # queries per minute; None: unlimited
    sa.Column("queries", sa.BigInteger, nullable=False, default=0),
)
buckets = sa.Table(
    "buckets",
    meta,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("total", sa.Integer, primary_key=True),  # the hash table's size
    sa.Column("bucket", sa.Integer, primary_key=True),
)
costs = sa.Table(
    "costs",
    meta,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("defence", sa.String(32), primary_key=True),
    sa.Column("amount", sa.Float, nullable=False),
)
events = sa.Table(  # one row per answered batch: the owner's plots and the rate limit read it
    "events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("t", sa.Float, nullable=False, index=True),
    sa.Column("queries", sa.Integer, nullable=False),
    sa.Column("total_queries", sa.BigInteger, nullable=False),
    sa.Column("coverage", sa.Float, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
)
spent = sa.Table(  # proof-of-work challenges already paid with
    "spent",
    meta,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("t", sa.Float, nullable=False),
)

KEY_PREFIX = "sk"


def engine_url(url: str) -> str:
    """SQLAlchemy's URL for ``url``: PostgreSQL goes through psycopg 3, a bare path is SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def _sqlite_setup(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class User:
    """An account as the API sees it after authentication."""

    id: int
    uid: str
    name: str
    owner: bool
    quota: int | None
    rate: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Store:
    """The server's database (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = sa.create_engine(engine_url(url), pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise SleuthError(f"cannot open database {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            _sqlite_setup(self.engine)
        try:
            meta.create_all(self.engine)
            self.secret = self._secret()
            self.center = self._center()
        except sa.exc.OperationalError as exc:
            raise SleuthError(f"cannot open database {url!r}: {exc.orig}") from None

    def _center(self) -> torch.Tensor | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(settings.c.value).where(settings.c.key == "lsh_center")
            ).scalar()
        return None if value is None else torch.tensor(json.loads(value), dtype=torch.float32)

    def keep_center(self, center: torch.Tensor) -> torch.Tensor:
        """Store the coverage LSH's center if none is stored yet; the stored one either way.
        It is fixed at the first start: moving it would make old coverage meaningless."""
        row = [{"key": "lsh_center", "value": json.dumps([float(v) for v in center])}]
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(settings, row))
        self.center = self._center()
        return self.center

    def _secret(self) -> bytes:
        """The server's secret (LSH planes, per-user transformations, puzzles), made once."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(settings.c.value).where(settings.c.key == "secret"))
            value = row.scalar()
            if value is None:
                value = secrets.token_hex(32)
                conn.execute(self._insert_ignore(settings, [{"key": "secret", "value": value}]))
                value = conn.execute(
                    sa.select(settings.c.value).where(settings.c.key == "secret")
                ).scalar_one()
        return bytes.fromhex(value)

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL both do)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _insert_ignore(self, table: sa.Table, rows: list[dict[str, Any]]) -> Any:
        return self._insert(table).values(rows).on_conflict_do_nothing()

    def _upsert_add(self, table: sa.Table, row: dict[str, Any], keys: list[str], col: str) -> Any:
        stmt = self._insert(table).values(row)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={col: table.c[col] + stmt.excluded[col]}
        )

    # --- accounts ------------------------------------------------------------------------

    def add_user(
        self, name: str, *, quota: int | None = None, rate: int | None = None, owner: bool = False
    ) -> str:
        """Create ``name``; returns its API key, which is stored only as a hash."""
        if not name or len(name) > 200 or not name.isprintable():
            raise SleuthError("a user name is 1 to 200 printable characters")
        for label, value in (("quota", quota), ("rate", rate)):
            if value is not None and value < 1:
                raise SleuthError(f"--{label} must be at least 1, got {value}")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = {
            "uid": secrets.token_hex(16),
            "name": name,
            "key_id": key_id,
            "key_hash": _hash(secret),
            "owner": owner,
            "created": time.time(),
            "quota": quota,
            "rate": rate,
            "queries": 0,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(row))
        except sa.exc.IntegrityError:
            raise SleuthError(f"user {name!r} already exists") from None
        return f"{KEY_PREFIX}-{key_id}-{secret}"

    def revoke(self, name: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                users.update()
                .where(users.c.name == name, users.c.revoked.is_(None))
                .values(revoked=time.time())
            )
        if done.rowcount != 1:
            raise SleuthError(f"no active user named {name!r}")

    def authenticate(self, key: str) -> User | None:
        """The active user whose key this is, or None (unknown, wrong or revoked)."""
        prefix, _, rest = key.partition("-")
        key_id, _, secret = rest.partition("-")
        if prefix != KEY_PREFIX or not key_id or not secret or len(key) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.key_id == key_id)).first()
        expected = row.key_hash if row is not None else _hash("")
        if not hmac.compare_digest(_hash(secret), expected) or row is None or row.revoked:
            return None
        return User(row.id, row.uid, row.name, bool(row.owner), row.quota, row.rate)

    def users_summary(self, total: int) -> list[dict[str, Any]]:
        """Every user's name, queries, coverage (of a ``total``-bucket table) and costs."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.id)).all()
            counts = dict(
                conn.execute(
                    sa.select(buckets.c.user_id, sa.func.count())
                    .where(buckets.c.total == total)
                    .group_by(buckets.c.user_id)
                ).all()
            )
            charged: dict[int, dict[str, float]] = {}
            for uid, defence, amount in conn.execute(sa.select(costs)).all():
                charged.setdefault(uid, {})[defence] = amount
        return [
            {
                "name": r.name,
                "owner": bool(r.owner),
                "queries": int(r.queries),
                "coverage": counts.get(r.id, 0) / total,
                "cost": charged.get(r.id, {}),
                "quota": r.quota,
                "rate": r.rate,
                "revoked": r.revoked is not None,
                "created": r.created,
            }
            for r in rows
        ]

    def history(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Every answered batch since ``since``: user, time, totals after it (for plots)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    users.c.name,
                    events.c.t,
                    events.c.total_queries,
                    events.c.coverage,
                    events.c.cost,
                )
                .join(users, users.c.id == events.c.user_id)
                .where(events.c.t >= since)
                .order_by(events.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()

    # --- one answered batch ------------------------------------------------------------------

    @contextmanager
    def view(self, user: User) -> Iterator[DBAccount]:
        """``user``'s account for reading only (what a gate's price is checked against)."""
        with self.engine.connect() as conn:
            yield DBAccount(self, conn, user, 0, False)

    @contextmanager
    def batch(self, user: User) -> Iterator[DBAccount]:
        """A transaction holding ``user``'s row for one batch's accounting (see ``DBAccount``)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(users).where(users.c.id == user.id).with_for_update()
            ).one()
            yield DBAccount(self, conn, user, int(row.queries), row.revoked is not None)


@dataclass
class DBAccount:
    """The ``Account`` of a user inside one batch's transaction (``steal.accounts``)."""

    store: Store
    conn: Connection
    info: User
    queries: int  # answered before this batch
    revoked: bool
    charged: float = 0.0  # what this batch was charged, all defences together

    @property
    def user(self) -> str:
        return self.info.uid

    @property
    def secret(self) -> bytes:
        return self.store.secret

    @property
    def center(self) -> torch.Tensor | None:
        return self.store.center

    def coverage(self, total: int) -> float:
        n = self.conn.execute(
            sa.select(sa.func.count())
            .select_from(buckets)
            .where(buckets.c.user_id == self.info.id, buckets.c.total == total)
        ).scalar_one()
        return n / total

    def cover(self, hashed: Iterable[int], total: int) -> float:
        rows = [{"user_id": self.info.id, "total": total, "bucket": int(b)} for b in set(hashed)]
        if rows:
            self.conn.execute(self.store._insert_ignore(buckets, rows))
        return self.coverage(total)

    def charge(self, defence: str, cost: float) -> None:
        row = {"user_id": self.info.id, "defence": defence, "amount": float(cost)}
        self.conn.execute(self.store._upsert_add(costs, row, ["user_id", "defence"], "amount"))
        self.charged += float(cost)

    def recent(self, seconds: float) -> int:
        """Queries answered in the last ``seconds`` (the rate limit's window)."""
        since = time.time() - seconds
        total = self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(events.c.queries), 0)).where(
                events.c.user_id == self.info.id, events.c.t >= since
            )
        ).scalar_one()
        return int(total)

    def spend(self, digest: str) -> bool:
        """Mark a proof-of-work challenge as used; False when it already was."""
        stmt = self.store._insert_ignore(spent, [{"digest": digest, "t": time.time()}])
        return self.conn.execute(stmt.returning(spent.c.digest)).first() is not None

    def answered(self, n: int, coverage: float) -> None:
        """Count ``n`` answered queries and log the batch (after the defences charged it)."""
        self.conn.execute(
            users.update().where(users.c.id == self.info.id).values(queries=users.c.queries + n)
        )
        total_cost = self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(costs.c.amount), 0.0)).where(
                costs.c.user_id == self.info.id
            )
        ).scalar_one()
        self.conn.execute(
            events.insert().values(
                user_id=self.info.id,
                t=time.time(),
                queries=n,
                total_queries=self.queries + n,
                coverage=coverage,
                cost=float(total_cost),
            )
        )
