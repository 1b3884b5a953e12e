# Options for the hardware-in-loop bench, registered at the root so that
# `pytest tests --board-port ...` works as well as `pytest tests/hil ...`.
from comptoir_tools.hil import add_pytest_options


def pytest_addoption(parser):
    add_pytest_options(parser)
