"""The baseline server: a trivial FastAPI JSON endpoint, run by uvicorn with the same settings as Rulestream."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.post("/echo")
@app.put("/echo")
def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"effects": [], "createdCoupons": [], "createdReferrals": [], "received": len(body)}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                timeout_keep_alive=75)  # as `rulestream serve` (api.cli.KEEP_ALIVE_SECONDS)
