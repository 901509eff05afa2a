"""A faithful SMSClub server for development, tests and the demo.

Plain Python (no Django settings needed)::

    with Emulator() as emu:
        settings = emu.gateway_settings("xml")

It models the provider, not this app: its rules (alpha-names of 1-11 ``[A-Za-z0-9 ._-]``,
Ukrainian numbers, part counting) are its own copy in :mod:`.rules`, and it imports none of
our rule modules (a test parses every module to make sure).

Endpoints (all on :attr:`Emulator.url`):

- HTTP legacy ``/hfw_smpp_addon/httpsendsms.php`` (GET), ``httpsendsmspost.php`` (POST),
  ``httpgetsmsstate.php``, ``httpgetsmsstatepost.php``, ``httpgetbalance.php``: text in
  Windows-1251 then Base64.
- HTTP current ``/http/``, ``/http/state.php``, ``/http/getbalance.php`` and token
  ``/token/``, ``/token/state.php``, ``/token/getbalance.php`` (``username`` + ``token``
  instead of the password): text in Windows-1251, URL-encoded, no Base64; GET or POST.
- XML legacy ``/hfw_smpp_addon/xmlsendsmspost.php``, ``xmlsendindividual.php``,
  ``xmlgetsmsstatepost.php`` (form field ``xmlrequest``, URL-encoded or multipart) and
  current ``/xml/``, ``/xml/individual.php``, ``/xml/state.php`` (the document as the raw
  body). Whitespace between tags is accepted unless ``emu.xml_strict_whitespace = True``.
- JSON ``/sms/send``, ``/sms/status``, ``/sms/balance``, ``/sms/originator`` and
  ``/v2/sms/send`` (``{"src_addr", "data_message": [{"phone", "message"}]}``, at most 100);
  bearer token; phones and IDs may be JSON numbers; 9 requests/s per token
  (``emu.json_rate_limit``).
- Every gateway: ``emu.rate_limit`` (default None, no cap) caps the requests of one account in
  any sliding second, whichever gateway and operation they take; beyond it the request is
  refused with HTTP 429 and ``Retry-After: 1`` (the Yii2 error object on JSON).
- SOAP ``/soap/soapGateway.wsdl`` and ``/soap/soapGateway.php``.

Reply variants per account (keywords of :meth:`Emulator.add_account`, or
:meth:`Emulator.configure_account` for an existing one, the default account by default):

- ``id_style``: ``"plain"`` (``1``, ``2``; default), ``"padded"`` (``000001``) or ``"alnum"``
  (``p000000001``, like the real ``p0066a46dc``).
- ``refusal_language``: ``"ru"`` (default, the provider's texts) or ``"en"`` (ours: no English
  refusal is published) for HTTP, XML, SOAP and JSON validation texts. An HTTP refusal is always
  HTTP 200 with a short text and no ``=IDS START=``.
- ``status_words``: ``"en"`` (``DELIVRD``; default) or ``"ru"`` (``Отправлено``, ``Доставлено``,
  ``Просрочено``, ``Недоставляемое``, ``Отклонено``) on JSON status replies.
- ``json_errors_http_200``: the Yii2 error object ``{name, message, code, status}`` with HTTP 200
  instead of the matching status line.
- ``empty_info``: ``"list"`` (default: PHP's ``"info": []`` when a status reply knows no ID) or
  ``"object"`` (``{}``).

Always: a JSON send where every number is refused answers ``add_info`` without ``info``;
refused numbers carry the provider's reasons (``Некорректный номер получателя``, and
``Данный номер находится в черном списке`` for :meth:`Emulator.blacklist`-ed ones, which the
HTTP, XML and SOAP gateways accept and report ``REJECTD``); a JSON request missing a field
answers ``add_info`` keyed by it (``{"src_addr": "не заполнен отправитель сообщения"}``), a
status request without ``id_sms`` a string ``add_info``. ``emu.http_reply_shape`` is
``"seen"``, ``"doc"`` or ``"lines"``.

The command line (``manage.py smsclub_emulator``, ``python -m django_smsclub.emulator``) sets
the default account's ``--id-style``, ``--refusal-language``, ``--status-words`` and
``--balance``.

Faults (``emu.faults.add(kind, times=, rate=, gateway=, op=, path=, seed=, ...)``):
``latency``, ``http_500``, ``drop_before``, ``drop_after``, ``garbled``, and ``refuse``: the
whole request refused in the gateway's own shape, nothing handled (``text=``, ``language=``,
and on JSON ``status=`` 400/401/404/405/429/500/503 and ``http_200=``).
"""

from .core import Emulator
from .faults import Fault
from .state import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    AcceptedSms,
    Account,
    RequestRecord,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "AcceptedSms",
    "Account",
    "Emulator",
    "Fault",
    "RequestRecord",
]
