"""The one exception type of the simulator: an OData error with its HTTP status and 1C code.

1C answers errors as ``{"odata.error": {"code": "<string>", "message": {"lang": "ru", "value": …}}}``;
the internal codes are listed in onec.md §1.8 (9 → 404, 20 → 401, -1 → 500, 14 → 400, 0 → 501).
"""

from __future__ import annotations


class ODataError(Exception):
    """An error answered with an `odata.error` body (JSON) or `m:error` (XML)."""

    def __init__(self, status: int, code: str | int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(code)
        self.message = message


def not_found_set(name: str) -> ODataError:
    return ODataError(404, "8", f"Не найден тип сущности \"{name}\"")


def not_found_entity(name: str) -> ODataError:
    return ODataError(404, "9", f"Экземпляр сущности \"{name}\" не найден по переданному ключу.")


def bad_query(message: str) -> ODataError:
    return ODataError(400, "14", f"Ошибка разбора параметров запроса: {message}")


def unsupported_function(name: str) -> ODataError:
    return ODataError(400, "21", f"Функция \"{name}\" не реализована")


def business(message: str) -> ODataError:
    """Configuration code failed (filling/check/posting handler): 500, code -1."""
    return ODataError(500, "-1", message)
