"""IP address and network types of the spec: text in, `ipaddress` objects out, and messages that say the fix.

Pydantic's own IP types accept integers (`5` becomes 0.0.0.5) and answer a subnet with host bits set only with
"not a valid IPv4 network"; these take text (or an already parsed object) and name the network meant.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import PlainValidator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value.strip()
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    raise ValueError(f"expected {what} as text, got {shown}")


def parse_network(value: object, version: int | None = None) -> Network:
    """A network in CIDR form; `version` 4 or 6 restricts it. Host bits set are an error naming the network meant."""
    example = "e.g. 10.42.0.0/24" if version == 4 else "e.g. 10.42.0.0/24 or fd00::/64"
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        network: Network = value
    else:
        text = _text(value, f"a subnet in CIDR form ({example})")
        try:
            network = ipaddress.ip_network(text)
        except ValueError:
            try:
                meant = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not a subnet in CIDR form (address/prefix length, {example})") from None
            raise ValueError(f"{text} has host bits set; did you mean {meant}?") from None
    if version is not None and network.version != version:
        raise ValueError(f"{network} is an IPv{network.version} subnet; this key needs IPv{version} ({example})")
    return network


def parse_address(value: object) -> Address:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    text = _text(value, "an IP address (e.g. 127.0.0.1)")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (e.g. 127.0.0.1 or ::1)") from None


IPv4Subnet = Annotated[ipaddress.IPv4Network, PlainValidator(lambda v: parse_network(v, 4))]
AnySubnet = Annotated[Network, PlainValidator(parse_network)]
AnyAddress = Annotated[Address, PlainValidator(parse_address)]
