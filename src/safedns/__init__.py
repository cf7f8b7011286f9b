"""safedns: a caching, ndots-aware stub resolver that will not flood your DNS.

>>> import safedns
>>> resolver = safedns.Resolver()                       # /etc/resolv.conf, like glibc
>>> resolver.resolve("api.example.com").addresses       # doctest: +SKIP
['192.0.2.10']
"""

from safedns._async import AsyncResolver
from safedns._bypasses import Bypass, bypasses
from safedns._config import ResolverConfig
from safedns._dropin.addrinfo import getaddrinfo, gethostbyname, gethostbyname_ex
from safedns._dropin.aio import async_getaddrinfo
from safedns._exceptions import InvalidName, NameNotFound, ResolveError, TemporaryFailure
from safedns._http.retry import RetryBudget, RetryPolicy
from safedns._metrics import Histogram, ServerHealth
from safedns._patch import is_patched, patch, patched, unpatch
from safedns._planning import plan
from safedns._records import Answer
from safedns._resolver import Resolver
from safedns._stats import Stats

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AsyncResolver",
    "Bypass",
    "Histogram",
    "InvalidName",
    "NameNotFound",
    "ResolveError",
    "Resolver",
    "ResolverConfig",
    "RetryBudget",
    "RetryPolicy",
    "ServerHealth",
    "Stats",
    "TemporaryFailure",
    "__version__",
    "async_getaddrinfo",
    "bypasses",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "is_patched",
    "patch",
    "patched",
    "plan",
    "unpatch",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = "safedns"
del _name, _obj
