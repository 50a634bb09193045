"""The owner's page: every account's queries, coverage and cost, as a table and as plots over
time, the accounts nearest a quota or the cost threshold first. Owner keys only (a bearer key,
or HTTP Basic with the key as password, which is what a browser can send)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from sleuth.serve.app import Service

ALERT = 0.8  # a row is highlighted from this share of a quota or of the cost threshold

_env = Environment(
    loader=PackageLoader("sleuth.serve", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def pressure(user: dict[str, Any], cost_alert: float | None) -> float:
    """How near a user is to a limit: the larger of its share of its quota and of the cost
    threshold (0 when neither is set)."""
    shares = [0.0]
    if user["quota"]:
        shares.append(user["queries"] / user["quota"])
    if cost_alert:
        shares.append(sum(user["cost"].values()) / cost_alert)
    return max(shares)


def ranked(summary: list[dict[str, Any]], cost_alert: float | None) -> list[dict[str, Any]]:
    """The users with their pressure, the highest first (then by name)."""
    rows = [{**u, "pressure": pressure(u, cost_alert)} for u in summary]
    return sorted(rows, key=lambda u: (-u["pressure"], u["name"]))


def history_png(history: list[dict[str, Any]]) -> bytes | None:
    """Queries, coverage and accumulated cost of each user against time, as one PNG."""
    if not history:
        return None
    fig = Figure(figsize=(12, 3.6), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    start = min(h["t"] for h in history)
    for name in sorted({h["name"] for h in history}):
        rows = [h for h in history if h["name"] == name]
        t = [(h["t"] - start) / 60 for h in rows]
        for ax, key in zip(axes, ("total_queries", "coverage", "cost"), strict=True):
            ax.plot(t, [h[key] for h in rows], marker=".", label=name)
    for ax, label in zip(
        axes, ("queries", "coverage (share of buckets)", "accumulated cost"), strict=True
    ):
        ax.set_xlabel("minutes since the first answer shown")
        ax.set_ylabel(label)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def admin_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=True)

    def owner(request: Request) -> None:
        if not service.user(request, basic=True).owner:
            raise HTTPException(403, "the owner's page needs an owner key")

    @router.get("/users", summary="Every account's queries, coverage and cost (owner only)")
    def users(request: Request) -> list[dict[str, Any]]:
        owner(request)
        return ranked(service.store.users_summary(service.cfg.buckets), service.cfg.cost_alert)

    @router.get("", response_class=HTMLResponse, summary="The owner's page (owner only)")
    def page(request: Request) -> HTMLResponse:
        owner(request)
        png = history_png(service.store.history())
        html = _env.get_template("admin.html.j2").render(
            users=ranked(service.store.users_summary(service.cfg.buckets), service.cfg.cost_alert),
            plot=base64.b64encode(png).decode() if png else None,
            encoder=service.cfg.encoder,
            defences=", ".join(service.cfg.defences),
            buckets=service.cfg.buckets,
            alert=ALERT,
        )
        return HTMLResponse(html)

    return router
