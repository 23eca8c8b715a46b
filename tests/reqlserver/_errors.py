# -*- test-case-name: tests.test_reqlserver -*-
"""Query errors of the test server, with the backtrace RethinkDB reports in ``b``."""

from __future__ import annotations

Frame = int | str
Path = tuple[Frame, ...]

# Response types and runtime error codes from ql2.proto.
SUCCESS_ATOM = 1
SUCCESS_SEQUENCE = 2
SUCCESS_PARTIAL = 3
WAIT_COMPLETE = 4
SERVER_INFO = 5
CLIENT_ERROR = 16
COMPILE_ERROR = 17
RUNTIME_ERROR = 18

INTERNAL = 1000000
RESOURCE_LIMIT = 2000000
QUERY_LOGIC = 3000000
NON_EXISTENCE = 3100000
OP_FAILED = 4100000
OP_INDETERMINATE = 4200000
USER = 5000000
PERMISSION_ERROR = 6000000


class ReqlError(Exception):
    """An error answered to a query: response type, message, backtrace."""

    response_type = RUNTIME_ERROR

    def __init__(self, message: str, path: Path = (), code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.code = code


class CompileError(ReqlError):
    response_type = COMPILE_ERROR


class RuntimeErr(ReqlError):
    response_type = RUNTIME_ERROR

    def __init__(self, message: str, path: Path = (), code: int = QUERY_LOGIC) -> None:
        super().__init__(message, path, code)


def logic(message: str, path: Path) -> RuntimeErr:
    return RuntimeErr(message, path, QUERY_LOGIC)


def op_failed(message: str, path: Path) -> RuntimeErr:
    return RuntimeErr(message, path, OP_FAILED)


def non_existence(message: str, path: Path) -> RuntimeErr:
    return RuntimeErr(message, path, NON_EXISTENCE)
