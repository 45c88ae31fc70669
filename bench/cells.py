"""The cells of ``make bench``: which target is loaded with which request, pixels and rows."""

from __future__ import annotations

from dataclasses import dataclass

from bench.bodies import MLSERVER_OUTPUTS, OIP_ROUTE, Pixels, oip_body, predict_body

MLSERVERS = ("mlserver-pw0", "mlserver-pw1")
GUARDED = "service-guarded"
# The guarded service with its rate limits in Redis, without and with feedback (the index
# of every decision in the same Redis): the cost of DIGITS_FEEDBACK=on, measured alone.
GUARDED_REDIS = "service-guarded-redis"
GUARDED_FEEDBACK = "service-guarded-feedback"
KEYED = (GUARDED, GUARDED_REDIS, GUARDED_FEEDBACK)  # every request carries a valid key


@dataclass(frozen=True)
class Cell:
    target: str
    route: str
    pixels: Pixels
    rows: int

    @property
    def request(self) -> str:
        """How the tables name the request: route and pixels."""
        route = "OIP infer" if self.route == OIP_ROUTE else "/predict"
        return f"{route}, {self.pixels}"

    def body(self) -> bytes:
        if self.route != OIP_ROUTE:
            return predict_body(self.rows, self.pixels)
        outputs = MLSERVER_OUTPUTS if self.target in MLSERVERS else None
        return oip_body(self.rows, self.pixels, outputs)


def _cells() -> list[Cell]:
    one = [
        Cell("floor", "/predict", "int", 1),
        Cell("service-granian", "/predict", "int", 1),
        Cell("service-granian", "/predict", "float", 1),
        Cell("service-granian", OIP_ROUTE, "int", 1),
        Cell(GUARDED, "/predict", "int", 1),
        Cell(GUARDED, "/predict", "float", 1),
        Cell(GUARDED_REDIS, "/predict", "int", 1),
        Cell(GUARDED_FEEDBACK, "/predict", "int", 1),
        Cell("service-uvicorn", "/predict", "int", 1),
        Cell("baseline", "/predict", "int", 1),
        *(Cell(name, OIP_ROUTE, "float", 1) for name in MLSERVERS),
    ]
    hundred = [
        Cell(GUARDED, "/predict", "float", 100),
        Cell(GUARDED, OIP_ROUTE, "float", 100),
        Cell(GUARDED, "/predict", "int", 100),
        *(Cell(name, OIP_ROUTE, "float", 100) for name in MLSERVERS),
    ]
    thousand = [
        Cell("service-granian", "/predict", "int", 1000),
        Cell("service-granian", "/predict", "float", 1000),
        Cell("service-granian", OIP_ROUTE, "int", 1000),
        Cell("service-uvicorn", "/predict", "int", 1000),
        Cell("baseline", "/predict", "int", 1000),
    ]
    return one + hundred + thousand


# One round loads these in this order, each for --duration seconds.
CELLS = _cells()
