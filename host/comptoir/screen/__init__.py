"""The counter screen: a web page for the pharmacist, served by the daemon on loopback, in French,
following the event stream live (docs/screen.md). It routes and serialises only: choosing,
dispensing and cancelling go through the same transaction store and event feed as the API."""

from .server import ScreenServer
from .sessions import Sessions, SignInLinks

__all__ = ["ScreenServer", "Sessions", "SignInLinks"]
