"""Hold the SMPP session of one gateway: send its queued messages, record its receipts."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from ... import conf
from ...exceptions import SmsClubError
from ...gateways.smpp import SmppGateway
from ...smpp_worker import RECEIPT_HOLD, SmppWorker

logger = logging.getLogger("django_smsclub.smpp")


class Command(BaseCommand):
    help = (
        "Run the SMPP session of an SMPP gateway until SIGTERM: send the messages queued for "
        "it and record the delivery receipts the SMSC pushes. Run one process per gateway."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--gateway",
            help="an SMPP gateway of SMSCLUB['GATEWAYS']; default: the only SMPP one",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="messages claimed at a time (default: SMSCLUB['SEND_BATCH_SIZE'])",
        )
        parser.add_argument(
            "--idle",
            type=float,
            default=1.0,
            help="seconds between looks for queued messages when there are none (default 1)",
        )
        parser.add_argument(
            "--receipt-hold",
            type=float,
            default=RECEIPT_HOLD,
            help="seconds a receipt for an SMSC ID not stored yet is kept (default 600)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["verbosity"])
        try:
            name = options["gateway"] or _only_smpp_gateway()
            worker = SmppWorker(
                name,
                batch_size=options["batch_size"],
                idle=options["idle"],
                receipt_hold=options["receipt_hold"],
            )
        except SmsClubError as exc:
            raise CommandError(str(exc)) from None

        def stop(signum: int, frame: Any) -> None:
            logger.info(
                "gateway %s: %s received; stopping",
                worker.name,
                signal.Signals(signum).name,
                extra={"gateway": worker.name, "outcome": "stopping"},
            )
            worker.stop()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            worker.run()
        except SmsClubError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _configure_logging(self, verbosity: int) -> None:
        """Make the worker's log lines visible unless the project already shows them."""
        if verbosity < 1:
            return
        smpp = logging.getLogger("django_smsclub.smpp")
        smpp.setLevel(logging.DEBUG if verbosity >= 3 else logging.INFO)
        # smpplib's own lines (connecting, PDU dumps) only at the highest verbosity.
        logging.getLogger("django_smsclub.smpp.wire").setLevel(
            logging.DEBUG if verbosity >= 3 else logging.WARNING
        )
        if not smpp.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            smpp.addHandler(handler)


def _only_smpp_gateway() -> str:
    default = conf.default_gateway_name()
    smpp = []
    for name in conf.gateway_names():
        try:
            backend = import_string(conf.gateway_settings(name)["BACKEND"])
        except (ImportError, SmsClubError):
            continue
        if isinstance(backend, type) and issubclass(backend, SmppGateway):
            smpp.append(name)
    if default in smpp or len(smpp) == 1:
        return default if default in smpp else smpp[0]
    if not smpp:
        raise CommandError("SMSCLUB configures no SMPP gateway")
    raise CommandError(
        f"SMSCLUB configures several SMPP gateways ({', '.join(smpp)}): name one with "
        "--gateway, one process each"
    )
