"""Personalized campaign benchmark: requests a campaign of personal texts takes per gateway.

Every recipient gets a text of its own ("Hi Ann, order 17 is ready"). The messages go through
each gateway's fixed flow (``Gateway.send``) in claims of ``SEND_BATCH_SIZE`` as the send task
makes them, over real sockets to the in-process emulator. Printed per gateway: requests,
seconds, and the least time the requests take at the JSON API's 9 requests/s. The JSON gateway
is measured twice: as it is (personal texts through ``/v2/sms/send``, up to 100 a request) and
the way it was before (one text a request through ``/sms/send``).

    .venv/bin/python bench/personal.py --recipients 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ["CELERY_BROKER_URL"] = "memory://"

#: The JSON API's documented limit (smsclub.mobi/en/api).
JSON_REQUESTS_PER_SECOND = 9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--claim", type=int, default=500, help="messages per claimed batch")
    args = parser.parse_args()

    import django

    django.setup()
    from django_smsclub.emulator import Emulator
    from django_smsclub.gateways import Outgoing
    from django_smsclub.gateways.http import HttpGateway
    from django_smsclub.gateways.json import JsonGateway
    from django_smsclub.gateways.xml import XmlGateway

    class OneTextJsonGateway(JsonGateway):
        """The JSON gateway before /v2/sms/send: one text per request."""

        personal_texts_per_request = False

    names = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay", "Gus", "Hal"]
    messages = [
        Outgoing(f"3805{i:08d}", f"Hi {names[i % len(names)]}, order {i} is ready")
        for i in range(args.recipients)
    ]
    gateways = [
        ("json (/v2/sms/send)", JsonGateway, "json"),
        ("json, one text a request (before)", OneTextJsonGateway, "json"),
        ("xml (individual)", XmlGateway, "xml"),
        ("http (one text a request)", HttpGateway, "http"),
    ]
    print(f"personalized campaign of {args.recipients} messages, claims of {args.claim}")
    print(f"{'gateway':<36}{'requests':>9}{'seconds':>9}{'at 9 req/s':>12}")
    for label, cls, backend in gateways:
        with Emulator() as emu:
            emu.json_rate_limit = 100_000
            gateway = cls("bench", **emu.gateway_settings(backend))
            started = time.perf_counter()
            accepted = 0
            for start in range(0, len(messages), args.claim):
                outcomes = gateway.send("Shop", messages[start : start + args.claim])
                accepted += sum(o.accepted for o in outcomes)
            seconds = time.perf_counter() - started
            requests = len([r for r in emu.requests if r.op == "send"])
            gateway.close()
        if accepted != len(messages):
            raise SystemExit(f"{label}: only {accepted} of {len(messages)} accepted")
        floor = (requests - 1) / JSON_REQUESTS_PER_SECOND
        print(f"{label:<36}{requests:>9}{seconds:>9.2f}{floor:>11.1f}s")


if __name__ == "__main__":
    main()
