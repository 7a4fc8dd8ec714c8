"""Jinja2 pages in ``templates/web`` and the wording people consent to."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from digestmail.config import Settings
from digestmail.paths import templates_root


def consent_wording(settings: Settings) -> str:
    """The sentence next to the subscribe button; stored verbatim with each request."""
    return (
        f"Yes, please email me {settings.publication}, about every two weeks. "
        "I can unsubscribe at any time with one click."
    )


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = Jinja2Templates(directory=templates_root(settings.templates_dir) / "web")

    def render(
        self,
        request: Request,
        template: str,
        /,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        base = {
            "publication": self.settings.publication,
            "contact_address": self.settings.contact_address,
            "consent": consent_wording(self.settings),
        }
        return self.templates.TemplateResponse(
            request, template, {**base, **context}, status_code=status_code
        )
