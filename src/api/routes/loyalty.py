"""(to be written)"""

from __future__ import annotations

from fastapi import APIRouter

from api.wire.json import FastJSONResponse

router = APIRouter(default_response_class=FastJSONResponse)
